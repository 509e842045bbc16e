package pgjournal_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durable-go/durable/journal/pgjournal"
)

// This example needs a PostgreSQL server, so it has no Output comment: it is
// compiled by go test but not run.
func Example() {
	ctx := context.Background()
	j, err := pgjournal.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	if err := j.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	// The first Put of a key wins; a later one gets the stored value back.
	stored, err := j.Put(ctx, "job-42/resize/0", []byte(`{"width":640}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stored %s\n", stored)

	value, ok, err := j.Get(ctx, "job-42/resize/0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("found %s: %v\n", value, ok)
}

// New puts the journal on a pool the application already has, here in a
// schema of its own and with smaller batches. Like the package example, it
// needs a server and is not run.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	j, err := pgjournal.New(ctx, pool,
		pgjournal.WithTable("jobs.durable_journal"),
		pgjournal.WithMaxBatch(64),
		pgjournal.WithMaxWait(200*time.Microsecond),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close() // before pool.Close, which is deferred earlier
	if err := j.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
}
