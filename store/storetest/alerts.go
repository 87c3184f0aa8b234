package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// testAlerts checks the AlertStore part: alerts recorded once per ID (also by concurrent
// callers), deliveries claimed once (also by concurrent claimers) and leased, attempts recorded,
// alerts and deliveries listed with filters, newest first; and, through two Meters sharing the
// Store, each threshold crossing alerted and delivered once.
func testAlerts(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Run("Record", func(t *testing.T) { testAlertRecord(t, newStore(t)) })
	t.Run("RecordConcurrent", func(t *testing.T) { testAlertRecordConcurrent(t, newStore(t)) })
	t.Run("Claim", func(t *testing.T) { testAlertClaim(t, newStore(t)) })
	t.Run("ClaimConcurrent", func(t *testing.T) { testAlertClaimConcurrent(t, newStore(t)) })
	t.Run("Finish", func(t *testing.T) { testAlertFinish(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testAlertList(t, newStore(t)) })
	t.Run("Meters", func(t *testing.T) { testAlertMeters(t, newStore(t)) })
}

// alertT0 is the instant the alert tests start at; whole seconds, which every store keeps.
var alertT0 = utc(2026, time.March, 2, 9, 0)

// newTestAlert is an alert of tenant about threshold percent of a daily rule, seen at at.
func newTestAlert(tenant, resource string, threshold int, at time.Time) billing.Alert {
	day := billing.Span{Start: billing.PeriodDay.Start(at, time.UTC)}
	day.End = billing.PeriodDay.Next(day.Start, time.UTC)
	return billing.Alert{ID: billing.AlertID(tenant, resource, billing.PeriodDay, day.Start, threshold),
		Tenant: tenant, Resource: resource, Period: billing.PeriodDay, Bucket: day, Threshold: threshold,
		Used: int64(threshold) * 10, Limit: 1000, Hard: threshold >= 100, At: at}
}

// recordNew records alerts that must be new.
func recordNew(t *testing.T, st billing.Store, alerts ...billing.Alert) {
	t.Helper()
	for _, a := range alerts {
		isNew, err := st.RecordAlert(context.Background(), a)
		if err != nil {
			t.Fatalf("RecordAlert(%s %d%%): %v", a.Tenant, a.Threshold, err)
		}
		if !isNew {
			t.Fatalf("RecordAlert(%s %d%%) = false for a new alert", a.Tenant, a.Threshold)
		}
	}
}

// claim claims deliveries and fails the test on error; it returns their alert IDs, sorted.
func claim(t *testing.T, st billing.Store, now time.Time, lease time.Duration, limit int) []string {
	t.Helper()
	ds, err := st.ClaimDeliveries(context.Background(), now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDeliveries(%s, %s, %d): %v", now.Format(time.RFC3339), lease, limit, err)
	}
	if len(ds) > limit {
		t.Errorf("ClaimDeliveries(limit %d) returned %d", limit, len(ds))
	}
	var ids []string
	for _, d := range ds {
		if d.Status != billing.DeliveryPending {
			t.Errorf("claimed delivery %s is %s, want pending", d.Alert.ID, d.Status)
		}
		ids = append(ids, d.Alert.ID)
	}
	slices.Sort(ids)
	return ids
}

// deliveries lists deliveries matching q and fails the test on error.
func deliveries(t *testing.T, st billing.Store, q billing.DeliveryQuery) []billing.Delivery {
	t.Helper()
	ds, err := st.ListDeliveries(context.Background(), q)
	if err != nil {
		t.Fatalf("ListDeliveries(%+v): %v", q, err)
	}
	return ds
}

// delivery returns the delivery of alert id, failing the test when it is not listed.
func delivery(t *testing.T, st billing.Store, id string) billing.Delivery {
	t.Helper()
	for _, d := range deliveries(t, st, billing.DeliveryQuery{Limit: 1000}) {
		if d.Alert.ID == id {
			return d
		}
	}
	t.Fatalf("no delivery of alert %s", id)
	return billing.Delivery{}
}

// sortedIDs returns the sorted IDs of alerts.
func sortedIDs(alerts ...billing.Alert) []string {
	var ids []string
	for _, a := range alerts {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return ids
}

func testAlertRecord(t *testing.T, st billing.Store) {
	ctx := context.Background()
	a := newTestAlert("acme", "requests", 80, alertT0.Add(123456789*time.Nanosecond))
	isNew, err := st.RecordAlert(ctx, a)
	if err != nil || !isNew {
		t.Fatalf("RecordAlert (first) = %v, %v; want true", isNew, err)
	}
	// The same ID again, even with other data, is not new and changes nothing.
	again := a
	again.Used, again.At = 999, a.At.Add(time.Hour)
	isNew, err = st.RecordAlert(ctx, again)
	if err != nil || isNew {
		t.Fatalf("RecordAlert (same ID again) = %v, %v; want false", isNew, err)
	}
	alerts, err := st.ListAlerts(ctx, billing.AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]billing.Alert{a}, alerts, cmpOpts); diff != "" {
		t.Errorf("ListAlerts after recording one alert twice (-first +listed):\n%s", diff)
	}
	// Its delivery is queued once: pending, not attempted, due when the alert was seen.
	ds := deliveries(t, st, billing.DeliveryQuery{})
	if len(ds) != 1 {
		t.Fatalf("ListDeliveries after recording one alert twice: %d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if diff := cmp.Diff(a, d.Alert, cmpOpts); diff != "" {
		t.Errorf("queued delivery's alert (-recorded +queued):\n%s", diff)
	}
	if d.Status != billing.DeliveryPending || d.Attempts != 0 || d.LastError != "" || d.NextAttempt.After(a.At) {
		t.Errorf("queued delivery = %s, %d attempts, error %q, next attempt %s; want pending, 0, none, due by %s",
			d.Status, d.Attempts, d.LastError, d.NextAttempt, a.At)
	}
	if got := claim(t, st, a.At, time.Minute, 10); !slices.Equal(got, []string{a.ID}) {
		t.Errorf("ClaimDeliveries when the alert was seen = %v, want [%s]", got, a.ID)
	}
	// Another threshold, resource or tenant is another alert.
	recordNew(t, st, newTestAlert("acme", "requests", 100, alertT0), newTestAlert("acme", "tokens", 80, alertT0),
		newTestAlert("globex", "requests", 80, alertT0))
	if alerts, err := st.ListAlerts(ctx, billing.AlertQuery{}); err != nil || len(alerts) != 4 {
		t.Errorf("ListAlerts = %d alerts, %v; want 4", len(alerts), err)
	}
}

func testAlertRecordConcurrent(t *testing.T, st billing.Store) {
	ctx := context.Background()
	const workers = 20
	alerts := []billing.Alert{newTestAlert("acme", "requests", 80, alertT0), newTestAlert("acme", "requests", 100, alertT0)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  = map[string]int{}
		start = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			<-start
			for _, a := range alerts {
				a.Used += int64(w) // every caller saw a different usage
				isNew, err := st.RecordAlert(ctx, a)
				if err != nil {
					t.Errorf("RecordAlert by worker %d: %v", w, err)
					return
				}
				if isNew {
					mu.Lock()
					wins[a.ID]++
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, a := range alerts {
		if wins[a.ID] != 1 {
			t.Errorf("%d concurrent RecordAlert calls of alert %d%% reported it new %d times, want once", workers, a.Threshold, wins[a.ID])
		}
	}
	listed, err := st.ListAlerts(ctx, billing.AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedIDs(listed...); !slices.Equal(got, sortedIDs(alerts...)) {
		t.Errorf("ListAlerts after concurrent recording = %v, want %v", got, sortedIDs(alerts...))
	}
	if ds := deliveries(t, st, billing.DeliveryQuery{}); len(ds) != len(alerts) {
		t.Errorf("%d deliveries queued for %d alerts recorded concurrently", len(ds), len(alerts))
	}
}

func testAlertClaim(t *testing.T, st billing.Store) {
	a := newTestAlert("acme", "requests", 50, alertT0)
	b := newTestAlert("acme", "requests", 80, alertT0.Add(time.Minute))
	c := newTestAlert("globex", "requests", 80, alertT0.Add(2*time.Minute))
	recordNew(t, st, a, b, c)
	if got := claim(t, st, alertT0.Add(-time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("ClaimDeliveries before any is due = %v, want none", got)
	}
	if got := claim(t, st, alertT0, time.Minute, 0); len(got) != 0 {
		t.Errorf("ClaimDeliveries(limit 0) = %v, want none", got)
	}
	// Due means NextAttempt <= now.
	now := alertT0.Add(time.Minute)
	const lease = 5 * time.Minute
	ds, err := st.ClaimDeliveries(context.Background(), now, lease, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]billing.Alert{}
	for _, d := range ds {
		got[d.Alert.ID] = d.Alert
	}
	if diff := cmp.Diff(map[string]billing.Alert{a.ID: a, b.ID: b}, got, cmpOpts); diff != "" {
		t.Errorf("ClaimDeliveries at %s (-due +claimed):\n%s", now.Format(time.TimeOnly), diff)
	}
	// The lease pushes NextAttempt to now+lease: claimed deliveries are not claimed again before.
	for _, id := range []string{a.ID, b.ID} {
		if d := delivery(t, st, id); !d.NextAttempt.Equal(now.Add(lease)) || d.Status != billing.DeliveryPending || d.Attempts != 0 {
			t.Errorf("leased delivery: %s, %d attempts, next attempt %s; want pending, 0, %s", d.Status, d.Attempts,
				d.NextAttempt.Format(time.TimeOnly), now.Add(lease).Format(time.TimeOnly))
		}
	}
	if d := delivery(t, st, c.ID); !d.NextAttempt.Equal(c.At) {
		t.Errorf("a delivery that was not claimed moved to %s", d.NextAttempt.Format(time.TimeOnly))
	}
	if got := claim(t, st, now, lease, 10); len(got) != 0 {
		t.Errorf("ClaimDeliveries again at once = %v, want none (leased)", got)
	}
	if got := claim(t, st, now.Add(lease-time.Second), lease, 10); !slices.Equal(got, []string{c.ID}) {
		t.Errorf("ClaimDeliveries within the lease = %v, want only the unleased [%s]", got, c.ID)
	}
	// When the lease ends (the claimer died), they are due again.
	if got := claim(t, st, now.Add(lease), lease, 10); !slices.Equal(got, sortedIDs(a, b)) {
		t.Errorf("ClaimDeliveries when the lease ends = %v, want %v", got, sortedIDs(a, b))
	}
	// limit caps a claim; the rest stays claimable.
	later := now.Add(time.Hour)
	first := claim(t, st, later, lease, 2)
	rest := claim(t, st, later, lease, 2)
	if len(first) != 2 || len(rest) != 1 {
		t.Fatalf("ClaimDeliveries(limit 2) twice = %v then %v; want 2 then 1", first, rest)
	}
	if all := slices.Sorted(slices.Values(append(first, rest...))); !slices.Equal(all, sortedIDs(a, b, c)) {
		t.Errorf("two limited claims got %v, want each of %v once", all, sortedIDs(a, b, c))
	}
}

func testAlertClaimConcurrent(t *testing.T, st billing.Store) {
	ctx := context.Background()
	const n, claimers = 60, 8
	var alerts []billing.Alert
	for i := range n {
		alerts = append(alerts, newTestAlert(fmt.Sprintf("t%02d", i), "requests", 80, alertT0.Add(time.Duration(i)*time.Second)))
	}
	recordNew(t, st, alerts...)
	now := alertT0.Add(time.Hour)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed = map[string]int{}
		start   = make(chan struct{})
	)
	for w := range claimers {
		wg.Go(func() {
			<-start
			for {
				ds, err := st.ClaimDeliveries(ctx, now, time.Hour, 5)
				if err != nil {
					t.Errorf("ClaimDeliveries by claimer %d: %v", w, err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					claimed[d.Alert.ID]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, a := range alerts {
		if claimed[a.ID] != 1 {
			t.Errorf("delivery of %s claimed %d times by %d concurrent claimers, want once", a.Tenant, claimed[a.ID], claimers)
		}
	}
	if len(claimed) != n {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), n)
	}
}

func testAlertFinish(t *testing.T, st billing.Store) {
	ok := newTestAlert("ok", "requests", 80, alertT0)
	retry := newTestAlert("retry", "requests", 80, alertT0)
	dead := newTestAlert("dead", "requests", 80, alertT0)
	recordNew(t, st, ok, retry, dead)
	now := alertT0.Add(time.Minute)
	ds, err := st.ClaimDeliveries(context.Background(), now, time.Minute, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("ClaimDeliveries = %d, %v; want 3", len(ds), err)
	}
	byTenant := map[string]billing.Delivery{}
	for _, d := range ds {
		byTenant[d.Alert.Tenant] = d
	}
	sent := now.Add(2 * time.Second)
	finish := func(d billing.Delivery) billing.Delivery {
		t.Helper()
		if err := st.FinishDelivery(context.Background(), d); err != nil {
			t.Fatalf("FinishDelivery(%s): %v", d.Alert.Tenant, err)
		}
		return d
	}
	d := byTenant["ok"]
	d.Status, d.Attempts, d.LastError, d.Updated = billing.DeliveryDelivered, 1, "", sent
	wantOK := finish(d)
	d = byTenant["retry"]
	d.Status, d.Attempts, d.LastError, d.Updated, d.NextAttempt = billing.DeliveryPending, 1, "receiver said 503", sent.Add(time.Second), sent.Add(30*time.Second)
	wantRetry := finish(d)
	d = byTenant["dead"]
	d.Status, d.Attempts, d.LastError, d.Updated = billing.DeliveryDead, 10, "gave up: 410 Gone", sent.Add(2*time.Second)
	wantDead := finish(d)

	for _, want := range []billing.Delivery{wantOK, wantRetry, wantDead} {
		got := delivery(t, st, want.Alert.ID)
		// Only the fields FinishDelivery records are compared; NextAttempt of a delivery that
		// is no longer pending is the store's business.
		if want.Status != billing.DeliveryPending {
			got.NextAttempt, want.NextAttempt = time.Time{}, time.Time{}
		}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("delivery of %s after FinishDelivery (-finished +stored):\n%s", want.Alert.Tenant, diff)
		}
	}
	// Delivered and dead deliveries are never claimed again; a retry is claimed when it is due.
	if got := claim(t, st, wantRetry.NextAttempt.Add(-time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("ClaimDeliveries before the retry is due = %v, want none", got)
	}
	if got := claim(t, st, wantRetry.NextAttempt, time.Minute, 10); !slices.Equal(got, []string{retry.ID}) {
		t.Errorf("ClaimDeliveries when the retry is due = %v, want [%s]", got, retry.ID)
	}
	if got := claim(t, st, alertT0.Add(1000*time.Hour), time.Minute, 10); !slices.Equal(got, []string{retry.ID}) {
		t.Errorf("ClaimDeliveries much later = %v, want only the pending retry [%s]", got, retry.ID)
	}
	for _, tc := range []struct {
		status billing.DeliveryStatus
		want   []string
	}{
		{billing.DeliveryDelivered, []string{ok.ID}},
		{billing.DeliveryDead, []string{dead.ID}},
		{billing.DeliveryPending, []string{retry.ID}},
	} {
		var got []string
		for _, d := range deliveries(t, st, billing.DeliveryQuery{Status: tc.status}) {
			got = append(got, d.Alert.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListDeliveries(status %s) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func testAlertList(t *testing.T, st billing.Store) {
	ctx := context.Background()
	// Seen in this order, a minute apart; listed newest first.
	seen := []billing.Alert{
		newTestAlert("acme", "requests", 50, alertT0),
		newTestAlert("globex", "requests", 50, alertT0.Add(1*time.Minute)),
		newTestAlert("acme", "requests", 80, alertT0.Add(2*time.Minute)),
		newTestAlert("acme", "tokens", 80, alertT0.Add(3*time.Minute)),
		newTestAlert("globex", "requests", 80, alertT0.Add(4*time.Minute)),
	}
	// Recorded out of order: the order is that of At, not of recording.
	recordNew(t, st, seen[2], seen[0], seen[4], seen[1], seen[3])
	listAlerts := func(q billing.AlertQuery) []billing.Alert {
		t.Helper()
		out, err := st.ListAlerts(ctx, q)
		if err != nil {
			t.Fatalf("ListAlerts(%+v): %v", q, err)
		}
		return out
	}
	for _, tc := range []struct {
		q    billing.AlertQuery
		want []billing.Alert
	}{
		{billing.AlertQuery{}, []billing.Alert{seen[4], seen[3], seen[2], seen[1], seen[0]}},
		{billing.AlertQuery{Tenant: "acme"}, []billing.Alert{seen[3], seen[2], seen[0]}},
		{billing.AlertQuery{Tenant: "globex", Limit: 1}, []billing.Alert{seen[4]}},
		{billing.AlertQuery{Limit: 2}, []billing.Alert{seen[4], seen[3]}},
		{billing.AlertQuery{Tenant: "nobody"}, nil},
	} {
		if diff := cmp.Diff(tc.want, listAlerts(tc.q), cmpOpts); diff != "" {
			t.Errorf("ListAlerts(%+v) (-want +got):\n%s", tc.q, diff)
		}
	}

	// Deliveries are newest first by their last update: finish some, in another order.
	now := alertT0.Add(time.Hour)
	ds, err := st.ClaimDeliveries(ctx, now, time.Minute, 10)
	if err != nil || len(ds) != len(seen) {
		t.Fatalf("ClaimDeliveries = %d, %v; want %d", len(ds), err, len(seen))
	}
	byID := map[string]billing.Delivery{}
	for _, d := range ds {
		byID[d.Alert.ID] = d
	}
	for i, a := range []billing.Alert{seen[1], seen[3], seen[0]} { // updated in this order
		d := byID[a.ID]
		d.Status, d.Attempts, d.Updated = billing.DeliveryDelivered, 1, now.Add(time.Duration(i+1)*time.Second)
		if i == 2 {
			d.Status, d.LastError = billing.DeliveryDead, "no receiver"
		}
		if err := st.FinishDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(q billing.DeliveryQuery) []string {
		t.Helper()
		var out []string
		for _, d := range deliveries(t, st, q) {
			out = append(out, d.Alert.Tenant+"/"+d.Alert.Resource+"/"+fmt.Sprint(d.Alert.Threshold))
		}
		return out
	}
	for _, tc := range []struct {
		q    billing.DeliveryQuery
		want []string
		// sorted: the order of want is not required, because it includes deliveries that were
		// not updated since they were queued, when is up to the store
		sorted bool
	}{
		{billing.DeliveryQuery{}, []string{"acme/requests/50", "acme/requests/80", "acme/tokens/80", "globex/requests/50", "globex/requests/80"}, true},
		{billing.DeliveryQuery{Tenant: "acme"}, []string{"acme/requests/50", "acme/requests/80", "acme/tokens/80"}, true},
		{billing.DeliveryQuery{Status: billing.DeliveryDelivered}, []string{"acme/tokens/80", "globex/requests/50"}, false},
		{billing.DeliveryQuery{Status: billing.DeliveryDelivered, Limit: 1}, []string{"acme/tokens/80"}, false},
		{billing.DeliveryQuery{Status: billing.DeliveryDelivered, Tenant: "globex"}, []string{"globex/requests/50"}, false},
		{billing.DeliveryQuery{Status: billing.DeliveryPending, Tenant: "acme"}, []string{"acme/requests/80"}, false},
		{billing.DeliveryQuery{Status: billing.DeliveryDead}, []string{"acme/requests/50"}, false},
		{billing.DeliveryQuery{Tenant: "nobody"}, nil, false},
	} {
		got := ids(tc.q)
		if tc.sorted {
			slices.Sort(got)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListDeliveries(%+v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	// Among deliveries updated by FinishDelivery, the latest update comes first.
	var finished []string
	for _, d := range deliveries(t, st, billing.DeliveryQuery{}) {
		if d.Status != billing.DeliveryPending {
			finished = append(finished, d.Alert.Tenant+"/"+d.Alert.Resource+"/"+fmt.Sprint(d.Alert.Threshold))
		}
	}
	if want := []string{"acme/requests/50", "acme/tokens/80", "globex/requests/50"}; !slices.Equal(finished, want) {
		t.Errorf("ListDeliveries() lists the finished deliveries as %v, want newest update first %v", finished, want)
	}

	// The default limit is 100.
	var many []billing.Alert
	for i := range 105 {
		many = append(many, newTestAlert(fmt.Sprintf("m%03d", i), "requests", 80, alertT0.Add(time.Hour+time.Duration(i)*time.Second)))
	}
	recordNew(t, st, many...)
	if got := listAlerts(billing.AlertQuery{}); len(got) != 100 || got[0].ID != many[104].ID {
		t.Errorf("ListAlerts() of 110 alerts = %d, newest %v; want the default 100, newest first", len(got), got[0].Tenant)
	}
	if got := deliveries(t, st, billing.DeliveryQuery{}); len(got) != 100 {
		t.Errorf("ListDeliveries() of 110 deliveries = %d, want the default 100", len(got))
	}
}

// testAlertMeters runs two Meters on one Store, like two replicas: each threshold crossing of a
// tenant is recorded once, however many of them check, and delivered once.
func testAlertMeters(t *testing.T, st billing.Store) {
	ctx := context.Background()
	now := utc(2026, time.March, 2, 12, 0)
	var (
		mu   sync.Mutex
		sent = map[string]int{}
	)
	notifier := billing.NotifierFunc(func(ctx context.Context, a billing.Alert) error {
		mu.Lock()
		sent[a.ID]++
		mu.Unlock()
		return nil
	})
	cfg := billing.Config{Store: st, Now: fixed(now), Notifier: notifier, AlertPollInterval: 10 * time.Millisecond}
	m1, m2 := newMeter(t, cfg), newMeter(t, cfg)
	if err := m1.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay,
		Limit: 10, NotifyAt: []int{50, 100}}); err != nil {
		t.Fatalf("SetQuota: %v", err)
	}
	for i := range 10 {
		m := []*billing.Meter{m1, m2}[i%2]
		if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 1, Time: now}); err != nil {
			t.Fatalf("Track: %v", err)
		}
	}
	var wg sync.WaitGroup
	for _, m := range []*billing.Meter{m1, m2, m1, m2} {
		wg.Go(func() {
			if _, err := m.CheckQuotas(ctx); err != nil {
				t.Errorf("CheckQuotas: %v", err)
			}
		})
	}
	wg.Wait()
	alerts, err := st.ListAlerts(ctx, billing.AlertQuery{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	var thresholds []int
	for _, a := range alerts {
		thresholds = append(thresholds, a.Threshold)
	}
	slices.Sort(thresholds)
	if !slices.Equal(thresholds, []int{50, 100}) {
		t.Fatalf("alerts of 10 of 10 requests (thresholds 50%%, 100%%) by two Meters: thresholds %v, want [50 100]", thresholds)
	}
	// Both Meters' outboxes poll the Store: each alert is delivered once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ds := deliveries(t, st, billing.DeliveryQuery{Status: billing.DeliveryDelivered}); len(ds) == len(alerts) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not delivered after 10s: %+v", deliveries(t, st, billing.DeliveryQuery{}))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range alerts {
		if sent[a.ID] != 1 {
			t.Errorf("alert %d%% was sent %d times by two Meters, want once", a.Threshold, sent[a.ID])
		}
	}
}
