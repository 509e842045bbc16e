package peers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5"
)

// dbosInput is the input of dbosFanOut.
type dbosInput struct {
	N, Cap int
}

// dbosFanOut is the workload as DBOS Transact runs it: one workflow whose N
// steps run concurrently through dbos.Go, the documented way to run steps
// concurrently inside a workflow (dbos.Go takes the step's ID when it is
// called, so the calls are made in step order, from the workflow's
// goroutine). dbos.Go has no cap, so the workflow expresses one: it takes a
// slot of a semaphore of in.Cap before each dbos.Go and gives it back once the
// step's outcome, checkpoint included, has arrived. Steps run with DBOS's
// default options (no retries).
func dbosFanOut(ctx dbos.Context, in dbosInput) ([]Result, error) {
	sem := make(chan struct{}, in.Cap) // the cap: a slot per running step
	out := make([]Result, in.N)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range in.N {
		sem <- struct{}{}
		ch, err := dbos.Go(ctx, func(context.Context) (Result, error) { return runStep(i) })
		if err != nil {
			<-sem
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			break
		}
		wg.Go(func() {
			o := <-ch
			<-sem
			if o.Err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("step %d: %w", i, o.Err))
				mu.Unlock()
				return
			}
			out[i] = o.Result
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// dbosRun runs the workload on DBOS Transact with its PostgreSQL system
// database in the trial's schema, everything else at its defaults. A fresh
// run and a rerun call RunWorkflow with the execution's workflow ID: on a
// completed workflow it returns a handle to the recorded output. A resume
// launches DBOS, which recovers the workflows left PENDING by this executor
// ("local"), and waits for the result through RetrieveWorkflow, polling every
// 5 ms (the default is every second).
func dbosRun(ctx context.Context, c childConfig) (childReport, error) {
	dctx, err := dbos.NewContext(ctx, dbos.Config{
		AppName:        c.app,
		DatabaseURL:    c.url,
		DatabaseSchema: c.schema,
		Logger:         quietLogger(),
	})
	if err != nil {
		return childReport{}, err
	}
	dbos.RegisterWorkflow(dctx, dbosFanOut)
	if err := dbos.Launch(dctx); err != nil {
		return childReport{}, err
	}
	defer dbos.Shutdown(dctx, 10*time.Second)

	ready := time.Now()
	var h dbos.WorkflowHandle[[]Result]
	var opts []dbos.GetResultOption
	if c.mode == modeResume {
		h, err = dbos.RetrieveWorkflow[[]Result](dctx, c.id)
		opts = append(opts, dbos.WithHandlePollingInterval(5*time.Millisecond))
	} else {
		h, err = dbos.RunWorkflow(dctx, dbosFanOut, dbosInput{N: c.n, Cap: c.cap}, dbos.WithWorkflowID(c.id))
	}
	if err != nil {
		return childReport{}, err
	}
	res, err := h.GetResult(opts...)
	done := time.Now()
	if err != nil {
		return childReport{}, err
	}
	if err := check(res, c.n); err != nil {
		return childReport{}, err
	}
	return finish(ready, done), nil
}

// dbosStored lists the steps whose output DBOS checkpointed: the rows of the
// workflow in its operation_outputs table without an error, each output
// decoded as DBOS's default serializer wrote it (base64 of the JSON).
func dbosStored(ctx context.Context, url, schema, id string) (map[int]bool, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT output FROM `+pgx.Identifier{schema, "operation_outputs"}.Sanitize()+`
		WHERE workflow_uuid = $1 AND error IS NULL`, id)
	if err != nil {
		return nil, err
	}
	stored := map[int]bool{}
	var output string
	_, err = pgx.ForEachRow(rows, []any{&output}, func() error {
		raw, err := base64.StdEncoding.DecodeString(output)
		if err != nil {
			return fmt.Errorf("output %q: %w", output, err)
		}
		var r Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("output %s: %w", raw, err)
		}
		stored[r.I] = true
		return nil
	})
	return stored, err
}
