package pgjournal

// Transactions reports how many write transactions j has committed: with group
// commit, the number of batches.
func Transactions(j *Journal) int64 { return j.txns.Load() }

// Successor exposes the upper bound of a prefix scan.
func Successor(prefix []byte) ([]byte, bool) { return successor(prefix) }
