//go:build race

package redisstore

// raceEnabled is true under -race, where the model tests run fewer
// operations.
const raceEnabled = true
