"""Prometheus metrics of the gateway. Labels are zone, role, category, action: never an address,
a user or a URL, so the metrics hold no personal data by construction."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("poortwachter_requests", "Decisions taken, by zone, role, category and action",
                   ["zone", "role", "category", "action"])
DECISION_SECONDS = Histogram("poortwachter_decision_seconds", "Time to decide one request",
                             buckets=(2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3))
RELOADS = Counter("poortwachter_policy_reloads", "Policy loads and reloads by result", ["result"])
GENERATION = Gauge("poortwachter_policy_generation", "Generation of the policy in force")
LIST_ENTRIES = Gauge("poortwachter_list_entries", "Entries per installed category list", ["list"])
# What the gate refuses on how a connection is made, by zone and rule (a fixed set of rule names,
# see gateway.py): streams that are not web traffic, closed CONNECT ports, hidden ECH destinations.
REFUSALS = Counter("poortwachter_refusals", "Connections refused on how they are made, by zone and rule",
                   ["zone", "rule"])
# The school's resolver (addons/resolver.py): answers by zone, role, category and action, like
# REQUESTS; upstream failures by kind (timeout, error).
DNS_QUERIES = Counter("poortwachter_dns_queries", "Names decided by the school's resolver",
                      ["zone", "role", "category", "action"])
DNS_UPSTREAM_ERRORS = Counter("poortwachter_dns_upstream_errors", "Questions no upstream resolver answered")
DNS_DROPPED = Counter("poortwachter_dns_dropped", "Questions dropped because too many were in flight (a flood)")
ECH_FRONTS = Gauge("poortwachter_ech_fronts_learnt", "ECH outer names learnt from HTTPS and SVCB records")
# Lists the policy names that are missing or empty: while above 0 the filter is not ready
# (settings.missing_lists says whether the gateway then blocks or lets the categories through).
MISSING_LISTS = Gauge("poortwachter_missing_lists", "Category lists the policy names that are not installed or empty")
TLS_PASSTHROUGH = Counter("poortwachter_tls_connections", "TLS connections by handling", ["zone", "handling"])

# Network health (addons/health.py). side: client (the client refused the handshake, typically a
# device without the school CA) or upstream (the site's certificate or handshake failed).
TLS_FAILURES = Counter("poortwachter_tls_failures", "TLS handshakes that failed, by zone and side", ["zone", "side"])
# kind: connect (refused, unreachable, DNS), tls, timeout, protocol.
UPSTREAM_ERRORS = Counter("poortwachter_upstream_errors", "Requests the upstream server could not answer, by kind",
                          ["kind"])
# kind: client (a malformed or aborted request), internal (a Poortwachter error: the request was refused).
ERRORS = Counter("poortwachter_errors", "Requests that ended in an error, by kind", ["kind"])
RESPONSE_SECONDS = Histogram("poortwachter_response_seconds",
                             "Time from the request to the first byte of the response, through the gateway",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

# The unblock workflow, counts only (refreshed by the gateway from the store).
WORKFLOW = {
    "pending_requests": Gauge("poortwachter_pending_requests", "Unblock requests waiting for endorsement or ICT"),
    "active_grants": Gauge("poortwachter_active_grants", "Approved unblocks in force now"),
    "active_openings": Gauge("poortwachter_active_openings", "Classroom openings and restrictions in force now"),
    "active_exams": Gauge("poortwachter_active_exams", "Zones in exam mode now"),
    "active_exclusions": Gauge("poortwachter_active_exclusions", "Network exclusions in force now"),
    "active_download_limits": Gauge("poortwachter_active_download_limits",
                                    "Clients under a download limit from the sensor (004 art. 13) now"),
    "open_cases": Gauge("poortwachter_open_cases", "Audit cases opened or approved and not yet closed or expired"),
}

# The audit recorder (addons/audit.py): counts and sizes only, never a subject or a host.
# result: recorded (written to the store in the normal course), spooled (waited on disk because the
# store failed or was slow), replayed (written to the store after waiting on disk), dropped (lost:
# the in-memory queue was full, or neither the store nor the disk took them; also counted at start
# for what the previous run lost while stopping), unconfirmed (answered before the event was on
# disk: durable recording whose disk did not confirm within poortwachter_audit_wait).
AUDIT_EVENTS = Counter("poortwachter_audit_events", "Audit events by what became of them", ["result"])

# Label sets known in advance exist at zero from the start: a series that first appears at 1 shows
# no increase(), so rates, dashboards and alerts would miss its first event.
for _result in ("success", "failure"):
    RELOADS.labels(_result)
for _kind in ("client", "internal"):
    ERRORS.labels(_kind)
for _kind in ("connect", "tls", "timeout", "protocol"):
    UPSTREAM_ERRORS.labels(_kind)
for _result in ("recorded", "spooled", "replayed", "dropped", "unconfirmed"):
    AUDIT_EVENTS.labels(_result)
AUDIT_SPOOL_BYTES = Gauge("poortwachter_audit_spool_bytes", "Bytes of audit events waiting in the disk spool")
AUDIT_QUEUE_DEPTH = Gauge("poortwachter_audit_queue_depth", "Audit events in memory: queued, or sealed and waiting "
                                                           "for the store")

# Fairness (addons/fairness.py, settings.fairness): what the gateway refused so that one client
# cannot take it from the others, by zone and reason (never an address). reason: connections (over
# the cap per client address), header_timeout (no whole request head in time), request_line (414),
# header_size (431, or an encrypted head closed for its size).
FAIRNESS_REASONS = ("connections", "header_timeout", "request_line", "header_size")
FAIRNESS_REFUSALS = Counter("poortwachter_fairness_refusals",
                            "Connections and requests refused to keep the gateway fair to every client, by zone and reason",
                            ["zone", "reason"])
IDLE_CLOSED = Counter("poortwachter_idle_closed",
                      "Kept-alive client connections closed after waiting settings.fairness.idle_seconds for a request",
                      ["zone"])
CLIENT_CONNECTIONS = Gauge("poortwachter_client_connections", "Client connections open now, by zone", ["zone"])
# Log lines the gateway left out because a line with the same cause was written in the same minute.
LOG_LINES_SUPPRESSED = Counter("poortwachter_log_lines_suppressed",
                               "Log lines not written because one with the same cause was written within the minute")
