// Package migrations holds the versioned migrations of mediasvc's Redis
// keyspace, embedded in the binary. `mediasvc migrate up` applies them (see
// README.md here); redisstore.LoadMigrations reads them.
package migrations

import "embed"

// FS holds the migration files, NNNN_name.lua.
//
//go:embed *.lua
var FS embed.FS
