package bridge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/store"
)

const testHSToken = "hs-secret"

func openTxnStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.DriverSQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func txnBridge(st *store.Store) *Bridge {
	s := &Settings{}
	s.AppService.HSToken = testHSToken
	return &Bridge{Settings: s, Hub: &runtime.Hub{Store: st}, Metrics: newMetrics(nil), log: zerolog.Nop()}
}

// countingNext stands in for the appservice: it counts calls and answers
// status.
type countingNext struct {
	calls  int
	status int
}

func (n *countingNext) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	n.calls++
	w.WriteHeader(n.status)
	_, _ = w.Write([]byte("{}"))
}

type txnStep struct {
	method, target string
	auth           string // Authorization header; "" sends none
	nextStatus     int    // what the appservice answers (default 200)
	wantNext       bool
	wantCode       int
}

func (st txnStep) do(t *testing.T, h http.Handler, next *countingNext) *httptest.ResponseRecorder {
	t.Helper()
	next.status = st.nextStatus
	if next.status == 0 {
		next.status = http.StatusOK
	}
	before := next.calls
	r := httptest.NewRequest(st.method, st.target, strings.NewReader(`{"events":[]}`))
	if st.auth != "" {
		r.Header.Set("Authorization", st.auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := next.calls - before; got != b2i(st.wantNext) {
		t.Errorf("%s %s (auth %q): reached the appservice %d times, want %d", st.method, st.target, st.auth, got, b2i(st.wantNext))
	}
	if w.Code != st.wantCode {
		t.Errorf("%s %s (auth %q): status %d, want %d", st.method, st.target, st.auth, w.Code, st.wantCode)
	}
	return w
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func txnCounts(b *Bridge) map[string]float64 {
	m := map[string]float64{}
	for _, r := range []string{"applied", "duplicate", "failed"} {
		if v := testutil.ToFloat64(b.Metrics.Transactions.WithLabelValues(r)); v != 0 {
			m[r] = v
		}
	}
	return m
}

func checkCounts(t *testing.T, b *Bridge, want map[string]float64) {
	t.Helper()
	got := txnCounts(b)
	for _, r := range []string{"applied", "duplicate", "failed"} {
		if got[r] != want[r] {
			t.Errorf("transactions{result=%q} = %v, want %v (all: %v)", r, got[r], want[r], got)
		}
	}
}

func checkApplied(t *testing.T, st *store.Store, want map[string]bool) {
	t.Helper()
	for id, w := range want {
		got, err := st.Matrix.Applied(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("transaction %q applied = %v, want %v", id, got, w)
		}
	}
}

func TestIdempotentTransactions(t *testing.T) {
	const (
		good  = "Bearer " + testHSToken
		wrong = "Bearer not-the-secret"
		txn   = "/_matrix/app/v1/transactions/"
	)
	ok, fail := http.StatusOK, http.StatusInternalServerError
	tests := []struct {
		name        string
		steps       []txnStep
		wantCounts  map[string]float64
		wantApplied map[string]bool
	}{
		{
			name: "applied once, then answered without the appservice",
			steps: []txnStep{
				{method: "PUT", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "t1", auth: good, wantNext: false, wantCode: ok},
				{method: "PUT", target: txn + "t1", auth: good, wantNext: false, wantCode: ok},
				{method: "PUT", target: txn + "t2", auth: good, wantNext: true, wantCode: ok},
			},
			wantCounts:  map[string]float64{"applied": 2, "duplicate": 2},
			wantApplied: map[string]bool{"t1": true, "t2": true, "t3": false},
		},
		{
			name: "bad tokens go to the appservice and record nothing",
			steps: []txnStep{
				{method: "PUT", target: txn + "t1", auth: wrong, nextStatus: http.StatusForbidden, wantNext: true, wantCode: http.StatusForbidden},
				{method: "PUT", target: txn + "t1", auth: "", nextStatus: http.StatusUnauthorized, wantNext: true, wantCode: http.StatusUnauthorized},
				{method: "PUT", target: txn + "t1", auth: "Bearer ", nextStatus: http.StatusUnauthorized, wantNext: true, wantCode: http.StatusUnauthorized},
				// Even an answer of 200 to a bad token is not recorded.
				{method: "PUT", target: txn + "t1", auth: wrong, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
			},
			wantCounts:  map[string]float64{"applied": 1},
			wantApplied: map[string]bool{"t1": true},
		},
		{
			name: "a bad token cannot probe an applied transaction",
			steps: []txnStep{
				{method: "PUT", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "t1", auth: wrong, nextStatus: http.StatusForbidden, wantNext: true, wantCode: http.StatusForbidden},
				{method: "PUT", target: txn + "t1", auth: "", nextStatus: http.StatusUnauthorized, wantNext: true, wantCode: http.StatusUnauthorized},
			},
			wantCounts:  map[string]float64{"applied": 1},
			wantApplied: map[string]bool{"t1": true},
		},
		{
			name: "a failed transaction is retried",
			steps: []txnStep{
				{method: "PUT", target: txn + "t1", auth: good, nextStatus: fail, wantNext: true, wantCode: fail},
				{method: "PUT", target: txn + "t1", auth: good, nextStatus: http.StatusBadRequest, wantNext: true, wantCode: http.StatusBadRequest},
				{method: "PUT", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "t1", auth: good, wantNext: false, wantCode: ok},
			},
			wantCounts:  map[string]float64{"failed": 2, "applied": 1, "duplicate": 1},
			wantApplied: map[string]bool{"t1": true},
		},
		{
			name: "other methods and paths pass through",
			steps: []txnStep{
				{method: "PUT", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
				{method: "GET", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
				{method: "POST", target: txn + "t1", auth: good, wantNext: true, wantCode: ok},
				{method: "GET", target: "/_matrix/app/v1/users/@myclerk_x:example.com", auth: good, wantNext: true, wantCode: ok},
				{method: "POST", target: "/_matrix/app/v1/ping", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: "/_matrix/app/v1/transactionsX/t1", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn, auth: good, nextStatus: http.StatusNotFound, wantNext: true, wantCode: http.StatusNotFound},
				{method: "PUT", target: txn + "t1/more", auth: good, nextStatus: http.StatusNotFound, wantNext: true, wantCode: http.StatusNotFound},
			},
			wantCounts:  map[string]float64{"applied": 1},
			wantApplied: map[string]bool{"t1": true, "t1/more": false},
		},
		{
			// The appservice (r.PathValue) sees the ID unescaped once:
			// "x%2541" is transaction "x%41", not "xA".
			name: "escaped transaction IDs are told apart",
			steps: []txnStep{
				{method: "PUT", target: txn + "xA", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "x%2541", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "x%2541", auth: good, wantNext: false, wantCode: ok},
				{method: "PUT", target: txn + "a%20b", auth: good, wantNext: true, wantCode: ok},
				{method: "PUT", target: txn + "a%20b", auth: good, wantNext: false, wantCode: ok},
			},
			wantCounts:  map[string]float64{"applied": 3, "duplicate": 2},
			wantApplied: map[string]bool{"xA": true, "x%41": true, "a b": true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openTxnStore(t, filepath.Join(t.TempDir(), "hub.db"))
			defer st.Close()
			b := txnBridge(st)
			next := &countingNext{}
			h := b.idempotentTransactions(next)
			for _, step := range tt.steps {
				step.do(t, h, next)
			}
			checkCounts(t, b, tt.wantCounts)
			checkApplied(t, st, tt.wantApplied)
		})
	}
}

// TestIdempotentTransactionsRestart checks that the log outlives the
// process: a new Bridge on the same database answers an applied
// transaction without the appservice.
func TestIdempotentTransactionsRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	put := func(id string, wantNext bool) txnStep {
		return txnStep{method: "PUT", target: txnPath + id, auth: "Bearer " + testHSToken, wantNext: wantNext, wantCode: http.StatusOK}
	}

	st := openTxnStore(t, path)
	b := txnBridge(st)
	next := &countingNext{}
	put("t1", true).do(t, b.idempotentTransactions(next), next)
	checkCounts(t, b, map[string]float64{"applied": 1})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openTxnStore(t, path)
	defer st.Close()
	b = txnBridge(st)
	next = &countingNext{}
	h := b.idempotentTransactions(next)
	put("t1", false).do(t, h, next)
	put("t2", true).do(t, h, next)
	checkCounts(t, b, map[string]float64{"duplicate": 1, "applied": 1})
}

// TestIdempotentTransactionsStoreDown checks that a log that cannot be
// read answers 500 (the homeserver retries) rather than guessing.
func TestIdempotentTransactionsStoreDown(t *testing.T) {
	st := openTxnStore(t, filepath.Join(t.TempDir(), "hub.db"))
	b := txnBridge(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	next := &countingNext{}
	h := b.idempotentTransactions(next)
	tests := []struct {
		step      txnStep
		wantErr   string // errcode in the body
		wantFails float64
	}{
		{txnStep{method: "PUT", target: txnPath + "t1", auth: "Bearer " + testHSToken, wantNext: false, wantCode: http.StatusInternalServerError}, "M_UNKNOWN", 1},
		{txnStep{method: "PUT", target: txnPath + "t1", auth: "Bearer " + testHSToken, wantNext: false, wantCode: http.StatusInternalServerError}, "M_UNKNOWN", 2},
		// Without the token the store is not asked.
		{txnStep{method: "PUT", target: txnPath + "t1", auth: "Bearer nope", nextStatus: http.StatusForbidden, wantNext: true, wantCode: http.StatusForbidden}, "", 2},
		{txnStep{method: "GET", target: txnPath + "t1", auth: "Bearer " + testHSToken, wantNext: true, wantCode: http.StatusOK}, "", 2},
	}
	for _, tt := range tests {
		w := tt.step.do(t, h, next)
		if tt.wantErr != "" {
			var body struct {
				ErrCode string `json:"errcode"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.ErrCode != tt.wantErr {
				t.Errorf("body %q (%v): want errcode %s", w.Body, err, tt.wantErr)
			}
		}
		if got := testutil.ToFloat64(b.Metrics.Transactions.WithLabelValues("failed")); got != tt.wantFails {
			t.Errorf("failed transactions = %v, want %v", got, tt.wantFails)
		}
	}
	checkCounts(t, b, map[string]float64{"failed": 2})
}
