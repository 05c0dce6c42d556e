//go:build race

package memstore

// raceEnabled is true under -race, where the model tests run fewer
// operations.
const raceEnabled = true
