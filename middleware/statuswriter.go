package middleware

import (
	"io"
	"net/http"
)

// statusWriter records the status a handler answers with, and passes everything through. It
// implements http.Flusher (streaming handlers check for it), FlushError, io.ReaderFrom and Unwrap, so http.ResponseController
// reaches the writer below (Hijack, deadlines, full duplex).
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the final status is known
}

// WriteHeader implements http.ResponseWriter. Informational (1xx) statuses pass through without
// being recorded.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter; a write without a status is a 200.
func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom implements io.ReaderFrom, so io.Copy to the response (http.ServeContent, file
// servers) still reaches the server's own ReadFrom and its sendfile path.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

// Flush implements http.Flusher; flushing without a status sends a 200.
func (w *statusWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush that reports a failed write (a client that has gone), for
// http.ResponseController.
func (w *statusWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the writer below, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code returns the status the handler answered with: 200 when it wrote nothing.
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
