package durable

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogObserver returns an [Observer] that logs to l (nil: [slog.Default]): one
// record at Info when a batch ends (at Warn when it ends with an error), one at
// Warn for each failed branch and each retry, and one at Debug for each branch
// that succeeded or was replayed, each batch start and each checkpoint. Records
// carry the attributes execution, path, combinator, name, status, reason,
// replayed, attempt, duration and err, those that apply. It asks the handler
// whether a level is enabled before it builds a record, so disabled levels
// cost almost nothing. It is safe for concurrent use.
func LogObserver(l *slog.Logger) Observer {
	if l == nil {
		l = slog.Default()
	}
	return logObserver{l}
}

type logObserver struct{ l *slog.Logger }

func (o logObserver) Observe(ctx context.Context, e Event) context.Context {
	level, msg := slog.LevelDebug, ""
	switch e.Kind {
	case EventBatchStart:
		msg = "durable: batch started"
	case EventBatchEnd:
		level, msg = slog.LevelInfo, "durable: batch completed"
		if e.Err != nil {
			level, msg = slog.LevelWarn, "durable: batch failed"
		}
	case EventBranchEnd:
		msg = "durable: branch succeeded"
		if e.Status == StatusFailed {
			level, msg = slog.LevelWarn, "durable: branch failed"
		}
	case EventRetry:
		level, msg = slog.LevelWarn, "durable: attempt failed, retrying"
	case EventCheckpoint:
		msg = "durable: checkpoint written"
	case EventDecisionReplayed:
		level, msg = slog.LevelInfo, "durable: decision replayed"
	default:
		return ctx // a branch's start: its end says it all
	}
	if !o.l.Enabled(ctx, level) {
		return ctx
	}
	attrs := make([]slog.Attr, 0, 12)
	if e.Execution != "" {
		attrs = append(attrs, slog.String("execution", e.Execution))
	}
	attrs = append(attrs, slog.String("path", e.Path), slog.String("combinator", e.Combinator), slog.String("name", e.Name))
	switch e.Kind {
	case EventBatchStart:
		attrs = append(attrs, slog.Int("branches", e.Branches), slog.String("policy", e.Policy), slog.Bool("resumed", e.Resumed))
	case EventBatchEnd:
		if e.Reason != 0 {
			attrs = append(attrs, slog.String("reason", e.Reason.String()))
		}
		attrs = append(attrs, slog.Int("succeeded", e.Succeeded), slog.Int("failed", e.Failed),
			slog.Bool("replayed", e.Replayed), slog.Duration("duration", e.Duration))
	case EventBranchEnd:
		attrs = append(attrs, slog.String("status", e.Status.String()), slog.Bool("replayed", e.Replayed),
			slog.Int("attempt", e.Attempt), slog.Duration("duration", e.Duration))
	case EventRetry:
		attrs = append(attrs, slog.Int("attempt", e.Attempt), slog.Duration("wait", e.Wait))
	case EventCheckpoint:
		attrs = append(attrs, slog.Int("bytes", e.Bytes), slog.Duration("duration", e.Duration))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	o.l.LogAttrs(ctx, level, msg, attrs...)
	return ctx
}

// ProgressSnapshot is the progress of one batch, as [Progress] reports it.
type ProgressSnapshot struct {
	Execution, Path, Combinator, Name string

	Total     int // branches in the batch (a Group: started so far)
	Succeeded int // ran here and succeeded
	Failed    int // ran here and failed
	Replayed  int // restored from the journal
	Running   int

	Elapsed   time.Duration
	Rate      float64       // branches that ran here, per second
	Remaining time.Duration // estimated from Rate; 0 when unknown
	Done      bool          // the batch ended: the last snapshot
}

// Progress returns an [Observer] that reports the progress of every batch run
// under it (nested ones too: tell them apart by Path) by calling report at
// most once every interval per batch, when a branch finishes, and once when
// the batch ends, with Done set. report is called from the branches'
// goroutines, one call at a time. interval must be positive.
func Progress(interval time.Duration, report func(ProgressSnapshot)) Observer {
	return &progress{every: interval, report: report, batches: make(map[string]*progressOf)}
}

type progress struct {
	every  time.Duration
	report func(ProgressSnapshot)

	mu      sync.Mutex
	batches map[string]*progressOf // by path
}

type progressOf struct {
	snap  ProgressSnapshot
	start time.Time
	last  time.Time
}

func (p *progress) Observe(ctx context.Context, e Event) context.Context {
	switch e.Kind {
	case EventBatchStart, EventBatchEnd, EventBranchStart, EventBranchEnd:
	default:
		return ctx
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Kind == EventBatchStart {
		now := time.Now()
		s := ProgressSnapshot{Execution: e.Execution, Path: e.Path, Combinator: e.Combinator, Name: e.Name, Total: max(e.Branches, 0)}
		p.batches[e.Path] = &progressOf{snap: s, start: now, last: now}
		return ctx
	}
	path := e.Path
	if e.Kind != EventBatchEnd {
		path = parentPath(e)
	}
	b := p.batches[path]
	if b == nil {
		return ctx
	}
	s := &b.snap
	switch e.Kind {
	case EventBranchStart:
		s.Running++
		if e.Combinator == "Group" {
			s.Total++
		}
		return ctx
	case EventBranchEnd:
		switch {
		case e.Replayed:
			s.Replayed++
			if e.Combinator == "Group" {
				s.Total++
			}
		case e.Status == StatusSucceeded:
			s.Running--
			s.Succeeded++
		default:
			s.Running--
			s.Failed++
		}
		if time.Since(b.last) < p.every {
			return ctx
		}
	case EventBatchEnd:
		s.Done = true
		delete(p.batches, path)
	}
	b.last = time.Now()
	s.Elapsed = b.last.Sub(b.start)
	ran := s.Succeeded + s.Failed
	s.Rate, s.Remaining = 0, 0
	if secs := s.Elapsed.Seconds(); ran > 0 && secs > 0 {
		s.Rate = float64(ran) / secs
		if left := s.Total - ran - s.Replayed; left > 0 && !s.Done {
			s.Remaining = time.Duration(float64(left) / s.Rate * float64(time.Second))
		}
	}
	p.report(*s)
	return ctx
}

// parentPath is the path of the batch a branch event belongs to.
func parentPath(e Event) string {
	for i := len(e.Path) - 1; i >= 0; i-- {
		if e.Path[i] == '/' {
			return e.Path[:i]
		}
	}
	return ""
}
