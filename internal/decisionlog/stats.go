package decisionlog

// Stats are a Logger's counts since New, for metrics. Every record handed
// to Log and not sampled out is, in the end, written, failed, or dropped
// for one of the reasons below.
type Stats struct {
	// Written: lines written (stdout, file), or records the receiver
	// accepted (http).
	Written uint64
	// Failed: records that could not be encoded or written (a write error
	// of stdout or file).
	Failed uint64
	// DroppedQueueFull: records Log dropped because decision_logs.buffer
	// records were already waiting for the log's goroutine.
	DroppedQueueFull uint64
	// DroppedBufferFull (http): the oldest records waiting to ship,
	// dropped because decision_logs.http.buffer (or buffer_max_bytes) was
	// reached while uploads failed or lagged.
	DroppedBufferFull uint64
	// DroppedRejected (http): records of batches the receiver refused
	// with a 4xx other than 408 and 429 (or a 3xx).
	DroppedRejected uint64
	// DroppedUnsent (http): records still unsent when the last attempt at
	// stop failed.
	DroppedUnsent uint64
	// UploadFailures (http) are failed uploads by reason: FailNetwork,
	// FailUnavailable (retried) and FailRejected (dropped).
	UploadFailures [numFails]uint64
	// Buffered (http) is how many records wait to ship now, the batch
	// being uploaded or retried included.
	Buffered int
}

// Stats returns l's counts. It never fails; a nil Logger has none.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	st := Stats{Written: l.Written(), Failed: l.Failed(), DroppedQueueFull: l.Dropped()}
	if s := l.shipper; s != nil {
		st.DroppedBufferFull, st.DroppedRejected, st.DroppedUnsent = s.overflow.Load(), s.rejected.Load(), s.unsent.Load()
		for i := range st.UploadFailures {
			st.UploadFailures[i] = s.fails[i].Load()
		}
		st.Buffered = s.buffered()
	}
	return st
}
