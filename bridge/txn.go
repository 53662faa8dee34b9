package bridge

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix"
)

const txnPath = "/_matrix/app/v1/transactions/"

// idempotentTransactions makes appservice transactions idempotent across
// restarts: a transaction ID that was applied before is answered 200 and
// not handed to the appservice again. (mautrix-go remembers the last 128
// IDs in memory only.) The ID is recorded once the appservice accepted
// the transaction; a failure to read the log answers 500, so the
// homeserver retries rather than the bridge guessing.
func (b *Bridge) idempotentTransactions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		escaped := r.URL.EscapedPath()
		if r.Method != http.MethodPut || !strings.HasPrefix(escaped, txnPath) || !b.authorized(r) {
			next.ServeHTTP(w, r) // the appservice answers the rest, and refuses bad tokens
			return
		}
		// The ID as the appservice's router sees it: the one path segment,
		// unescaped once.
		txn, err := url.PathUnescape(strings.TrimPrefix(escaped, txnPath))
		if err != nil || txn == "" || strings.Contains(txn, "/") {
			next.ServeHTTP(w, r)
			return
		}
		applied, err := b.Hub.Store.Matrix.Applied(r.Context(), txn)
		if err != nil {
			b.log.Error().Err(err).Str("txn_id", txn).Msg("Failed to read the transaction log; the homeserver will retry")
			b.Metrics.Transactions.WithLabelValues("failed").Inc()
			mautrix.MUnknown.WithMessage("transaction log unavailable").Write(w)
			return
		}
		if applied {
			b.log.Debug().Str("txn_id", txn).Msg("Ignoring a transaction applied before")
			b.Metrics.Transactions.WithLabelValues("duplicate").Inc()
			exhttp.WriteEmptyJSONResponse(w, http.StatusOK)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusOK {
			b.Metrics.Transactions.WithLabelValues("failed").Inc()
			return
		}
		if _, err := b.Hub.Store.Matrix.MarkApplied(r.Context(), txn, time.Now()); err != nil {
			b.log.Warn().Err(err).Str("txn_id", txn).Msg("Failed to record an applied transaction")
		}
		b.Metrics.Transactions.WithLabelValues("applied").Inc()
	})
}

// authorized checks the homeserver's token as the appservice does, so
// that nobody else can fill or probe the transaction log.
func (b *Bridge) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false // as the appservice: only the header counts
	}
	want := b.Settings.AppService.HSToken
	return tok != "" && want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
