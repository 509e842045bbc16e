package sqlitejournal_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/durable-go/durable/journal/sqlitejournal"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "sqlitejournal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	j, err := sqlitejournal.Open(filepath.Join(dir, "checkpoints.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()

	ctx := context.Background()
	stored, err := j.Put(ctx, "job-42/resize/0", []byte(`"thumb-0.png"`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stored %s\n", stored)

	// Keys are write-once: a second Put returns the value that won.
	stored, err = j.Put(ctx, "job-42/resize/0", []byte(`"other.png"`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("still %s\n", stored)

	value, ok, err := j.Get(ctx, "job-42/resize/0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("get %s %v\n", value, ok)
	// Output:
	// stored "thumb-0.png"
	// still "thumb-0.png"
	// get "thumb-0.png" true
}
