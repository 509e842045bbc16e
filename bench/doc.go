// Package bench holds durable's benchmarks against its peers: plain goroutines
// with a sync.WaitGroup, golang.org/x/sync/errgroup, github.com/sourcegraph/conc
// and github.com/alitto/pond/v2, and the checkpoint and replay throughput of
// each journal backend. It is a module of its own so that the root module does
// not depend on any of them.
//
// Every benchmark is in a _test.go file; docs/PERFORMANCE.md at the root of the
// repository shows the results and the commands that produced them.
//
// The PostgreSQL benchmarks read the server's URL from TEST_DATABASE_URL and
// are skipped when it is unset; scripts/pg.sh starts a throwaway server.
package bench
