package peers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cschleiden/go-workflows/backend"
	"github.com/cschleiden/go-workflows/backend/history"
	"github.com/cschleiden/go-workflows/backend/sqlite"
	"github.com/cschleiden/go-workflows/client"
	"github.com/cschleiden/go-workflows/core"
	"github.com/cschleiden/go-workflows/diag"
	"github.com/cschleiden/go-workflows/worker"
	"github.com/cschleiden/go-workflows/workflow"
)

// gwActivityOptions runs an activity once: durable and DBOS run a step once
// unless told otherwise, and go-workflows' default of three attempts runs a
// workflow coroutine per activity to watch for failures.
var gwActivityOptions = workflow.ActivityOptions{RetryOptions: workflow.RetryOptions{MaxAttempts: 1}}

// gwFanOut is the workload as go-workflows runs it: one workflow that
// schedules n activities at once and waits for their futures in order. The
// cap is the worker's MaxParallelActivityTasks.
func gwFanOut(ctx workflow.Context, n int) ([]Result, error) {
	futures := make([]workflow.Future[Result], n)
	for i := range n {
		futures[i] = workflow.ExecuteActivity[Result](ctx, gwActivityOptions, gwStep, i)
	}
	out := make([]Result, n)
	for i, f := range futures {
		r, err := f.Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

func gwStep(_ context.Context, i int) (Result, error) { return runStep(i) }

// gwWorkerName is the worker's name in every process: go-workflows keeps a
// workflow instance "sticky" to the worker that last ran it, so a process
// that restarts under the same name may take it up at once.
const gwWorkerName = "peers"

// gwBackend opens the SQLite backend as go-workflows' README does, with
// synchronous=FULL spelled out (SQLite's default, which the backend leaves as
// it is; it sets WAL mode and one connection), and these options: a history
// long enough for n activities (the default, 10,000 events, fails a workflow
// of 5,000 activities), a fixed worker name, and lock timeouts of c.lock
// (defaults: a minute for a workflow task, two for an activity), which bound
// how long a resumed process waits for the locks the killed one held. (The
// monoprocess wrapper, which wakes an in-process worker when a task is
// queued, was slower here on a fresh run of 1,000 steps, 2.4 s against 1.6 s,
// and leaves a resumed worker waiting out its 30-second poll for the expired
// locks.)
func gwBackend(c childConfig) backend.Backend {
	return sqlite.NewSqliteBackend(c.path+"?_pragma=synchronous(FULL)",
		sqlite.WithBackendOptions(
			backend.WithLogger(quietLogger()),
			backend.WithMaxHistorySize(int64(4*c.n+100)),
			backend.WithWorkerName(gwWorkerName),
			backend.WithWorkflowLockTimeout(c.lock),
			backend.WithActivityLockTimeout(c.lock),
		))
}

// gwRun runs the workload on go-workflows. A fresh run creates the workflow
// instance and waits for its result with client.GetWorkflowResult; a rerun
// finds the completed instance by its ID (through the backend's diagnostics
// interface, as the execution ID is not known) and reads its result, without
// a worker; a resume starts the worker, which takes up the instance once the
// killed process's locks have expired, and waits for the result.
//
// For a fresh or resumed run, the reported call ends when the completion was
// committed (the instance's completed_at, read back through the diagnostics
// interface): GetWorkflowResult polls with a backoff of up to a second, and
// its return is reported apart.
func gwRun(ctx context.Context, c childConfig) (childReport, error) {
	b := gwBackend(c)
	defer b.Close()
	diagB, ok := b.(diag.Backend)
	if !ok {
		return childReport{}, errors.New("the backend has no diagnostics interface")
	}
	cl := client.New(b)
	if c.mode != modeRerun {
		opts := worker.DefaultOptions
		opts.MaxParallelActivityTasks = c.cap
		opts.WorkflowHeartbeatInterval = c.lock / 5
		opts.ActivityHeartbeatInterval = c.lock / 5
		w := worker.New(b, &opts)
		if err := w.RegisterWorkflow(gwFanOut); err != nil {
			return childReport{}, err
		}
		if err := w.RegisterActivity(gwStep); err != nil {
			return childReport{}, err
		}
		wctx, cancel := context.WithCancel(ctx)
		if err := w.Start(wctx); err != nil {
			cancel()
			return childReport{}, err
		}
		defer func() {
			cancel()
			_ = w.WaitForCompletion()
		}()
	}

	ready := time.Now()
	var inst *workflow.Instance
	var err error
	if c.mode == modeFresh {
		inst, err = cl.CreateWorkflowInstance(ctx, client.WorkflowInstanceOptions{InstanceID: c.id}, gwFanOut, c.n)
	} else {
		inst, err = gwFind(ctx, diagB, c.id)
	}
	if err != nil {
		return childReport{}, err
	}
	res, err := client.GetWorkflowResult[[]Result](ctx, cl, inst, time.Hour)
	returned := time.Now()
	if err != nil {
		return childReport{}, err
	}
	if err := check(res, c.n); err != nil {
		return childReport{}, err
	}
	if c.mode == modeRerun {
		return finish(ready, returned), nil
	}
	ref, err := diagB.GetWorkflowInstance(ctx, inst)
	if err != nil {
		return childReport{}, err
	}
	if ref == nil || ref.CompletedAt == nil {
		return childReport{}, errors.New("the instance has no completion time")
	}
	rep := finish(ready, *ref.CompletedAt)
	rep.ClientNS = returned.Sub(ready).Nanoseconds()
	return rep, nil
}

// gwFind returns the instance whose ID is id.
func gwFind(ctx context.Context, b diag.Backend, id string) (*workflow.Instance, error) {
	refs, err := b.GetWorkflowInstances(ctx, "", "", 100)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if r.Instance.InstanceID == id {
			return core.NewWorkflowInstance(r.Instance.InstanceID, r.Instance.ExecutionID), nil
		}
	}
	return nil, fmt.Errorf("no workflow instance %q", id)
}

// gwStored lists the activities whose result go-workflows stored: the
// ActivityCompleted events, still pending or already in the history, whose
// attributes hold the activity's result.
func gwStored(ctx context.Context, path string) (map[int]bool, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT a.data FROM attributes a JOIN (
		SELECT id, instance_id, execution_id FROM history WHERE event_type = ?1
		UNION ALL
		SELECT id, instance_id, execution_id FROM pending_events WHERE event_type = ?1
	) e ON a.id = e.id AND a.instance_id = e.instance_id AND a.execution_id = e.execution_id`,
		history.EventType_ActivityCompleted)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := map[int]bool{}
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		attr, err := history.DeserializeAttributes(history.EventType_ActivityCompleted, data)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(attr.(*history.ActivityCompletedAttributes).Result, &r); err != nil {
			return nil, err
		}
		stored[r.I] = true
	}
	return stored, rows.Err()
}
