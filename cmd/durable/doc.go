// Command durable inspects and manages the journals that durable executions
// checkpoint into (github.com/durable-go/durable): it lists the executions a
// journal holds, shows one as a tree, deletes one, and deletes those last
// written before a time.
//
//	go install github.com/durable-go/durable/cmd/durable@latest
//
//	durable ls   --journal sqlite:jobs.db
//	durable show --journal sqlite:jobs.db orders-2025-06-01 [--depth N] [--json]
//	durable rm   --journal sqlite:jobs.db orders-2025-06-01 [--yes]
//	durable gc   --journal postgres://app@db/app --older-than 720h [--dry-run] [--yes]
//
// # Journals
//
// --journal, or the environment variable DURABLE_JOURNAL when the flag is not
// given, names the journal: sqlite:PATH for an SQLite file
// (journal/sqlitejournal), or a postgres:// or postgresql:// URL for a
// PostgreSQL database (journal/pgjournal), whose table --table names
// ("durable_journal" by default; "schema.table" works). A PostgreSQL URL may
// carry any parameter pgx accepts (sslmode, search_path, ...).
//
// Neither backend has a read-only mode, so what durable does to a journal
// when it opens one is what the backend's Open does:
//
//   - An SQLite file that an older release wrote is migrated, as
//     sqlitejournal.Open migrates it for every program built with this
//     release: in one transaction, and processes still running the older
//     release keep working with the migrated file. The file is put in WAL
//     mode. Reading needs no migration, but sqlitejournal offers no way to
//     open without one, and a file that one of the application's own
//     processes would migrate on its next start is no worse for it. A path
//     where no file exists is an error: durable does not create one.
//   - A PostgreSQL journal is never migrated (pgjournal.Open does not), so
//     durable needs no rights to create anything. show reads the table of
//     entries and works at every schema version; ls, rm and gc read the
//     table of executions, which schema version 2 adds: on an older schema
//     they fail, saying to run Migrate (pgjournal.Journal.Migrate, which the
//     application runs). A table that does not exist is an error that says
//     so.
//   - A journal that a newer release has migrated (a schema version this
//     binary does not know) is refused before anything is read or written,
//     with both versions named: install a newer durable.
//
// # Commands
//
// ls lists the executions, in the byte order of their stored IDs: entries,
// first and last write (local time), and the ID as the program gave it
// (unescaped). show prints an execution as an indented tree: each combinator
// (kind, name, its branches counted by status, decision and the branch that
// decided it, start, policy), each
// branch (index, name, status, how long it ran, when it finished, failed
// attempts, a preview of its value cut to 60 characters, or its error as
// "type: message"), the steps run inside, nested; entries that do not decode
// are flagged CORRUPT with the reason. Times are offsets from the execution's
// start, printed on its first line; durations have three significant digits.
// --depth N stops N levels below the execution and says how many nodes it
// left out. Colours are ANSI codes, written only when standard output is a
// terminal and NO_COLOR is unset or empty.
//
// rm deletes one execution and gc the executions last written more than
// --older-than ago; gc --dry-run lists them and deletes nothing. Both ask on
// the terminal ("[y/N]") unless --yes is given, and without a terminal (a
// pipe, a cron job) and without --yes they refuse, with exit status 2.
//
// Deleting an execution that a process is still running races with it: the
// process's next checkpoint (a Put) recreates the execution with the entries
// written from then on, and a later resume of it runs again the steps whose
// entries were deleted. Delete only executions no process runs: stop or
// finish the job first, or, with gc, choose --older-than longer than any job
// runs (gc compares this machine's clock less the duration with the times the
// journal recorded, which for PostgreSQL are the server's).
//
// # Exit status and errors
//
// 0: success. 1: an error: the journal cannot be opened or read, the
// execution does not exist ("no such execution"), a deletion was not
// confirmed. 2: bad usage: an unknown command or flag, a missing or extra
// argument, no journal given, a --journal value that names no journal (no
// known scheme, an empty path, a PostgreSQL URL that does not parse), rm or
// gc with nothing to confirm on. A URL that parses but whose server cannot be
// reached is an error (1). Errors are one line on standard error, naming the
// command.
//
// # JSON output
//
// Version 1 of the JSON that "durable ls --json" and "durable show --json" write.
//
// Stability: within a version, fields are only ever added, never renamed,
// removed or given another type; a change that would break a reader raises
// "version". Readers must ignore fields they do not know. Times are RFC 3339
// strings with nanoseconds, in UTC; durations are integers of nanoseconds, in
// fields whose names end in _ns. A field shown with "?" is omitted when empty.
//
// durable ls --json writes one object:
//
//	{
//	  "version": 1,
//	  "executions": [
//	    {
//	      "id": string,      // the execution ID, as given to durable.WithJournal
//	      "key": string,     // the ID as stored: the keys' first segment, escaped
//	      "entries": int,    // how many entries it has
//	      "first": time,     // when the oldest entry was written (journal's clock)
//	      "last": time       // when the latest entry was written
//	    }, ...
//	  ]
//	}
//
// durable show --json EXEC writes one object:
//
//	{
//	  "version": 1,
//	  "execution": node      // the execution, the root of the tree
//	}
//
// where a node is
//
//	{
//	  "kind": "execution" | "combinator" | "branch" | "step",
//	  "name": string,        // unescaped; a branch of an unnamed set: its index
//	  "key": string,         // its journal key (escaped)
//	  "index"?: int,         // a branch: its index in its combinator's input
//	  "combinator"?: string, // a combinator: "Parallel", "Settle", "Group", ...
//	  "policy"?: string,     // a combinator: its completion rule
//	  "start"?: time,        // a combinator: when it first started
//	  "decision"?: {         // a combinator whose decision is journaled
//	    "reason": string,    // "ALL_COMPLETED", "MIN_SUCCESSFUL_REACHED", ...
//	    "decided"?: time,
//	    "winner"?: string    // the branch that decided it
//	  },
//	  "status"?: string,     // a branch or step: "SUCCEEDED", "FAILED",
//	                         // "CANCELLED", "NOT_STARTED", or "NOT_JOURNALED"
//	                         // (nothing journaled: running, failed with a
//	                         // failure that is not final, or never started)
//	  "finished"?: time,     // when its outcome was journaled
//	  "ran_ns"?: int,        // how long it ran
//	  "codec"?: string,      // the value's codec, "" for encoding/json
//	  "value"?: any,         // the value, as JSON, with the encoding/json codec
//	  "value_base64"?: string, // the value's bytes, with any other codec
//	  "error"?: error,       // its final failure
//	  "attempts"?: [         // the failed attempts of a retried step
//	    {"attempt": int, "finished"?: time, "ran_ns"?: int,
//	     "next_at"?: time, "error": error}, ...
//	  ],
//	  "corrupt"?: [          // entries under it that do not decode
//	    {"key": string, "error": string}, ...
//	  ],
//	  "children"?: [node, ...], // combinators and steps in key order,
//	                         // a combinator's branches in input order
//	  "omitted"?: int        // nodes below it that --depth left out
//	}
//
// and an error is
//
//	{"type": string, "message": string, "sentinels"?: [string, ...]}
//
// with the error's Go type, its message, and the registered sentinel errors it
// matched.
package main
