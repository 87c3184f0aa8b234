package billing

// QueueLen reports how many Track calls wait in m's queue for the writer. Tests use it to know
// when concurrent calls are queued, so they can assert how the writer batches them.
func QueueLen(m *Meter) int { return len(m.queue) }
