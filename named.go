package durable

import "context"

// ParallelNamed is [Parallel] returning the values by step name. Names are unique
// ([ErrDuplicateName]), so the map has one entry per step. Errors, cancellation,
// panics, caps, journaling and cost are Parallel's.
func ParallelNamed[T any](ctx context.Context, name string, steps []Step[T], opts ...Option) (map[string]T, error) {
	b, err := stepBatch(ctx, "ParallelNamed", name, steps, opts)
	if err != nil || b == nil {
		return emptyOr(err, map[string]T{})
	}
	if err := b.exec(ctx, failFast, false); err != nil {
		return nil, err
	}
	if err := b.failFastErr(); err != nil {
		return nil, err
	}
	m := make(map[string]T, len(steps))
	for i, s := range steps {
		m[s.Name] = b.values[i]
	}
	return m, nil
}
