// Package metrics exposes a billing.Meter's counters (billing.Stats) to Prometheus.
//
// The root package keeps its counters with atomic adds and depends on no metrics library; this
// package reads a snapshot on every scrape and turns it into Prometheus metrics:
//
//	billing_events_total{result="inserted|duplicate|conflict|closed|failed"}  counter
//	billing_commit_errors_total                                               counter
//	billing_batch_size                                                        histogram (events per transaction)
//	billing_commit_seconds                                                    histogram (store transaction time)
//	billing_queue_depth, billing_queue_capacity                               gauges (Track calls waiting)
//	billing_refusals_total{reason="quota|rate"}                               counter
//	billing_alerts_total                                                      counter
//	billing_alert_deliveries_total{result="ok|failed|dead"}                   counter
//
// Mount Handler(m) on the host's mux, or register NewCollector(m) in the host's own registry.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meterplane/billing"
)

// Collector is a prometheus.Collector of one Meter's Stats. It holds no state of its own: every
// Collect reads a fresh snapshot, so it is safe for concurrent scrapes. Create it with
// NewCollector or NewLabeledCollector.
type Collector struct {
	m *billing.Meter

	events, commitErrors, batchSize, commitSeconds *prometheus.Desc
	queueDepth, queueCapacity, refusals, alerts    *prometheus.Desc
	deliveries, jobs                               *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of m's Stats.
func NewCollector(m *billing.Meter) *Collector { return NewLabeledCollector(m, nil) }

// NewLabeledCollector returns a Collector whose metrics all carry labels (for example
// {"meter": "eu"}), so that several Meters of one process can share a registry. nil labels are
// none.
func NewLabeledCollector(m *billing.Meter, labels prometheus.Labels) *Collector {
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	return &Collector{
		m:             m,
		events:        d("billing_events_total", "Events handled by the writer, by result: inserted (counted), duplicate (a retry, ignored), conflict (same id, other content), closed (period invoiced), failed (store error).", "result"),
		commitErrors:  d("billing_commit_errors_total", "Store transactions of events that failed."),
		batchSize:     d("billing_batch_size", "Events per committed store transaction (group commit)."),
		commitSeconds: d("billing_commit_seconds", "Duration of committed store transactions of events, in seconds."),
		queueDepth:    d("billing_queue_depth", "Track calls waiting for the writer."),
		queueCapacity: d("billing_queue_capacity", "Track calls the writer's queue holds (Config.QueueSize)."),
		refusals:      d("billing_refusals_total", "Requests refused, by reason: quota (a hard quota) or rate (a rate limit).", "reason"),
		alerts:        d("billing_alerts_total", "Quota alerts recorded by this process."),
		deliveries:    d("billing_alert_deliveries_total", "Alert delivery attempts, by result: ok, failed (retried later) or dead (given up).", "result"),
		jobs:          d("billing_job_runs_total", "Background job runs of Meter.Run claimed by this process, by job and result: ok or failed.", "job", "result"),
	}
}

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.commitErrors, c.batchSize, c.commitSeconds,
		c.queueDepth, c.queueCapacity, c.refusals, c.alerts, c.deliveries, c.jobs} {
		ch <- d
	}
}

// Collect reads the Meter's Stats and sends them as metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.events, s.EventsInserted, "inserted")
	counter(c.events, s.EventsDuplicate, "duplicate")
	counter(c.events, s.EventsConflict, "conflict")
	counter(c.events, s.EventsClosed, "closed")
	counter(c.events, s.EventsFailed, "failed")
	counter(c.commitErrors, s.CommitErrors)
	ch <- constHistogram(c.batchSize, s.BatchSize)
	ch <- constHistogram(c.commitSeconds, s.CommitSeconds)
	ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(s.QueueDepth))
	ch <- prometheus.MustNewConstMetric(c.queueCapacity, prometheus.GaugeValue, float64(s.QueueCapacity))
	counter(c.refusals, s.QuotaRefusals, "quota")
	counter(c.refusals, s.RateRefusals, "rate")
	counter(c.alerts, s.AlertsRecorded)
	counter(c.deliveries, s.DeliveriesOK, "ok")
	counter(c.deliveries, s.DeliveriesFailed, "failed")
	counter(c.deliveries, s.DeliveriesDead, "dead")
	for name, n := range c.m.JobRuns() {
		counter(c.jobs, n.Runs, name, "ok")
		counter(c.jobs, n.Failures, name, "failed")
	}
}

// constHistogram converts a billing.Histogram (per-bucket counts) to a Prometheus histogram
// (cumulative counts; the +Inf bucket is the count).
func constHistogram(d *prometheus.Desc, h billing.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}
