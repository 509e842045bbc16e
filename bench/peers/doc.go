// Package peers measures durable against the durable-execution systems a Go
// programmer already knows, on one workload: one execution of N steps, at most
// 64 running at once, each step returning a struct of two ints, with real
// durability (SQLite synchronous=FULL, PostgreSQL fsync=on).
//
//   - durable with journal/sqlitejournal, against go-workflows
//     (github.com/cschleiden/go-workflows) on its SQLite backend;
//   - durable with journal/pgjournal, against DBOS Transact
//     (github.com/dbos-inc/dbos-transact-golang) on the same PostgreSQL server.
//
// Three measurements, each run in a process of its own: a fresh run; a rerun
// of the completed execution in a new process; and a crash-resume, where the
// process is killed with SIGKILL half-way and a new process finishes the
// execution. The crash-resume counts the steps that ran twice, and the steps
// that ran again although their result was already stored (which must be 0).
//
// It is a module of its own so that no other module of the repository depends
// on either peer. Everything is in _test.go files: TestPeers is the driver,
// which runs the workload of each system in child processes (this test binary
// running TestPeersChild) and prints a table. It is skipped unless -peers.n is
// given:
//
//	cd bench/peers
//	GOWORK=off go test -run '^TestPeers$' -v -timeout 2h . -peers.n=1000,10000 -peers.rounds=5
//
// The PostgreSQL systems read the server's URL from TEST_DATABASE_URL; see
// docs/PERFORMANCE.md at the root of the repository for the results, the
// commands and what makes each comparison imperfect.
package peers
