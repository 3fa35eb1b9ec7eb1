//! The register workload: a seeded generator of reads, writes and compare-and-sets with unique
//! write values per key, open-loop and closed-loop drivers, and the execution of one operation
//! through the balancer (with retries only after definite failures), recorded in the history.

mod generator;

pub use generator::Generator;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_protocol::{ErrorCode, Op, OpKind};
use serde::{Deserialize, Serialize};

use crate::balancer::{Balancing, Reply};
use crate::cluster::{CallError, NodeHandle, SharedView};
use crate::history::{HistoryLine, LineType, Outcome, Recorder, RunClock};

/// Counters the progress display and the report read while the load runs.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub invoked: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Tries after an operation's first (sent after a definite failure).
    pub retries: AtomicU64,
    /// Open loop: operations that were due.
    pub scheduled: AtomicU64,
    /// Open loop: operations that started more than 1 ms after they were due.
    pub late_1ms: AtomicU64,
    /// Open loop: the worst start delay, in microseconds.
    pub max_late_us: AtomicU64,
    /// Open loop: operations due before the end of the load that could only have started
    /// after it (the harness or the machine could not keep up): never sent, so not in the
    /// history. Counted in `scheduled`.
    pub not_started: AtomicU64,
    /// Open loop: of `not_started`, those due while `in_flight_limit` were in flight.
    pub at_limit: AtomicU64,
    /// Open loop: the bound on operations in flight.
    pub in_flight_limit: AtomicU64,
    /// Operations in flight now, and the most at once.
    pub in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
}

/// What the report says about how well the load kept its schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSummary {
    /// `open` or `closed`.
    pub mode: String,
    pub scheduled: u64,
    pub late_1ms: u64,
    pub late_share: f64,
    pub max_late_ms: f64,
    /// Of `scheduled`, the operations never sent: due while `max_in_flight` operations were
    /// in flight, or due before the end but only able to start after it.
    #[serde(default)]
    pub not_started: u64,
    /// Open loop: of `not_started`, those due while the in-flight limit was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_limit: Option<u64>,
    /// Open loop: the bound on operations in flight (`workload.max_in_flight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    /// The most operations in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_in_flight: Option<u64>,
}

impl LoadStats {
    /// One more operation in flight.
    fn enter(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn summary(&self, open: bool) -> LoadSummary {
        let scheduled = self.scheduled.load(Ordering::Relaxed);
        let late = self.late_1ms.load(Ordering::Relaxed);
        LoadSummary {
            mode: if open { "open" } else { "closed" }.into(),
            scheduled,
            late_1ms: late,
            late_share: if scheduled == 0 {
                0.0
            } else {
                late as f64 / scheduled as f64
            },
            max_late_ms: self.max_late_us.load(Ordering::Relaxed) as f64 / 1000.0,
            not_started: self.not_started.load(Ordering::Relaxed),
            at_limit: open.then(|| self.at_limit.load(Ordering::Relaxed)),
            max_in_flight: open.then(|| self.in_flight_limit.load(Ordering::Relaxed)),
            peak_in_flight: Some(self.peak_in_flight.load(Ordering::Relaxed)),
        }
    }
}

/// How long one operation may take and how often it is tried.
#[derive(Debug, Clone, Copy)]
pub struct OpLimits {
    /// The whole operation, every try included.
    pub timeout: Duration,
    /// Tries at most (at least 1).
    pub max_tries: u32,
    /// Time for one try of a read (one that runs out is retried elsewhere); `None`, and for
    /// writes and cas: the op's timeout.
    pub try_timeout: Option<Duration>,
}

/// Everything one operation needs; shared by every client task.
pub struct Ctx {
    pub nodes: Vec<Arc<NodeHandle>>,
    pub view: SharedView,
    pub balancer: Balancing,
    pub recorder: Recorder,
    pub clock: RunClock,
    pub generator: Mutex<Generator>,
    pub limits: OpLimits,
    pub stats: LoadStats,
    /// Set to stop the load early (Ctrl-C): no new operation starts.
    pub stop: std::sync::atomic::AtomicBool,
    next_op: AtomicU64,
    free_clients: Mutex<Vec<u32>>,
    next_client: AtomicU64,
}

/// The result of one operation, after retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub outcome: Outcome,
    /// Read: the value read (None = never written).
    pub value: Option<i64>,
    pub node: Option<String>,
    pub error: Option<String>,
}

impl Ctx {
    pub fn new(
        nodes: Vec<Arc<NodeHandle>>,
        view: SharedView,
        balancer: Balancing,
        recorder: Recorder,
        clock: RunClock,
        generator: Generator,
        limits: OpLimits,
    ) -> Self {
        Ctx {
            nodes,
            view,
            balancer,
            recorder,
            clock,
            generator: Mutex::new(generator),
            limits: OpLimits {
                max_tries: limits.max_tries.max(1),
                ..limits
            },
            stats: LoadStats::default(),
            stop: std::sync::atomic::AtomicBool::new(false),
            next_op: AtomicU64::new(1),
            free_clients: Mutex::new(Vec::new()),
            next_client: AtomicU64::new(0),
        }
    }

    /// A client number for an open-loop operation: a free one, or a fresh one.
    fn take_client(&self) -> u32 {
        self.free_clients
            .lock()
            .expect("client pool")
            .pop()
            .unwrap_or_else(|| self.fresh_client())
    }

    fn fresh_client(&self) -> u32 {
        self.next_client.fetch_add(1, Ordering::Relaxed) as u32
    }

    /// Return a client number; a client whose operation ended indeterminate is retired, as in
    /// Jepsen, since its operation may still be in flight.
    fn release_client(&self, client: u32, outcome: Outcome) {
        if outcome != Outcome::Info {
            self.free_clients.lock().expect("client pool").push(client);
        }
    }
}

/// Run one operation as client `client`: record its invocation, send it to the node the
/// balancer picks, retry on definite failures while tries and time remain, record the
/// completion. `due` is the open-loop due time, recorded with the invocation so latency counts
/// from it; `None` in closed loop.
pub async fn execute(ctx: &Ctx, client: u32, op: Op, due: Option<Instant>) -> Done {
    let id = ctx.next_op.fetch_add(1, Ordering::Relaxed);
    let kind = op.kind();
    let key = op.key().unwrap_or_default().to_string();
    let (value, from) = match &op {
        Op::Write { value, .. } => (Some(*value), None),
        Op::Cas { from, to, .. } => (Some(*to), *from),
        _ => (None, None),
    };
    let started = Instant::now();
    let deadline = started + ctx.limits.timeout;
    ctx.balancer.operation_started(started);
    let mut tried: Vec<usize> = Vec::new();
    let first = {
        let view = ctx.view.read().expect("view lock");
        ctx.balancer.pick(&key, &view, &tried)
    };
    ctx.stats.invoked.fetch_add(1, Ordering::Relaxed);
    ctx.recorder.record(&HistoryLine {
        ty: LineType::Invoke,
        id,
        client,
        f: kind,
        key: key.clone(),
        value,
        from,
        nil: false,
        node: first.map(|i| ctx.nodes[i].id.clone()),
        t: ctx.clock.at(started),
        due: due.map(|d| ctx.clock.at(d)),
        error: None,
    });
    let mut pick = first;
    let mut done = Done {
        outcome: Outcome::Fail,
        value: None,
        node: None,
        error: Some("no node to send to".into()),
    };
    for attempt in 0..ctx.limits.max_tries {
        let Some(node) = pick else { break };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        done.node = Some(ctx.nodes[node].id.clone());
        if attempt > 0 {
            ctx.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let flight = ctx.balancer.start(node, Instant::now());
        // Only a read may be retried after a try that ran out, so only a read's try is cut short.
        let this_try = match ctx.limits.try_timeout {
            Some(t) if kind == OpKind::Read => t.min(left),
            _ => left,
        };
        let result = ctx.nodes[node].client.call(op.clone(), this_try).await;
        let reply = match &result {
            Ok(resp) if resp.ok => Reply::Served,
            Ok(resp) => resp
                .error
                .as_ref()
                .map_or(Reply::Indefinite, |e| Reply::from_error(e.code, e.definite)),
            Err(e) => Reply::from_call_error(e),
        };
        flight.finish(reply, Instant::now());
        match result {
            Ok(resp) if resp.ok => {
                if kind != OpKind::Read {
                    ctx.balancer.learn_leader(node);
                }
                done.outcome = Outcome::Ok;
                done.value = resp.value.flatten();
                done.error = None;
                break;
            }
            Ok(resp) => {
                let err = resp.error.unwrap_or(faultline_protocol::ErrorBody {
                    code: ErrorCode::Other,
                    definite: false,
                    leader: None,
                    message: None,
                });
                done.error = Some(err.code.as_str().to_string());
                if !err.definite {
                    done.outcome = Outcome::Info;
                    break;
                }
                done.outcome = Outcome::Fail;
                if err.code == ErrorCode::CasMismatch || err.code == ErrorCode::BadRequest {
                    break;
                }
                tried.push(node);
                if err.code == ErrorCode::NotLeader {
                    if let Some(l) = err
                        .leader
                        .as_deref()
                        .and_then(|l| ctx.nodes.iter().position(|n| n.id == l))
                    {
                        ctx.balancer.learn_leader(l);
                    }
                } else if err.code == ErrorCode::Unavailable {
                    // Back off a little before the next try, inside the op's time budget.
                    tokio::time::sleep(Duration::from_millis(5).min(left)).await;
                }
            }
            Err(e) => {
                done.error = Some(e.code().to_string());
                // A read that ran out of its try (not of the op's time) goes to another node:
                // it changed nothing wherever it got to.
                let read_try_ran_out =
                    kind == OpKind::Read && matches!(e, CallError::Timeout) && this_try < left;
                if !e.definite() && !read_try_ran_out {
                    done.outcome = Outcome::Info;
                    break;
                }
                done.outcome = Outcome::Fail;
                tried.push(node);
            }
        }
        if attempt + 1 < ctx.limits.max_tries {
            pick = {
                let view = ctx.view.read().expect("view lock");
                ctx.balancer.pick(&key, &view, &tried)
            };
            // Over the retry budget, the operation ends with this definite failure.
            if pick.is_some() && !ctx.balancer.allow_retry(Instant::now()) {
                break;
            }
        }
    }
    let t = ctx.clock.ns();
    let counter = match done.outcome {
        Outcome::Ok => &ctx.stats.ok,
        Outcome::Fail => &ctx.stats.fail,
        Outcome::Info => &ctx.stats.info,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let is_read = kind == OpKind::Read;
    ctx.recorder.record(&HistoryLine {
        ty: match done.outcome {
            Outcome::Ok => LineType::Ok,
            Outcome::Fail => LineType::Fail,
            Outcome::Info => LineType::Info,
        },
        id,
        client,
        f: kind,
        key: key.clone(),
        value: if is_read { done.value } else { value },
        from,
        nil: is_read && done.outcome == Outcome::Ok && done.value.is_none(),
        node: done.node.clone(),
        t,
        due: None,
        error: done.error.clone(),
    });
    if done.outcome == Outcome::Ok {
        let seen = if is_read { done.value } else { value };
        if let Some(v) = seen {
            ctx.generator.lock().expect("generator").observe(&key, v);
        }
    }
    done
}

/// Closed loop: `concurrency` clients, each with one operation outstanding, until `until`.
pub async fn run_closed(ctx: Arc<Ctx>, concurrency: u32, until: Instant) {
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = ctx.fresh_client();
            while Instant::now() < until && !ctx.stop.load(Ordering::Relaxed) {
                let op = ctx.generator.lock().expect("generator").next_op();
                ctx.stats.enter();
                let done = execute(&ctx, client, op, None).await;
                ctx.stats.leave();
                if done.outcome == Outcome::Info {
                    client = ctx.fresh_client();
                }
                if done.outcome != Outcome::Ok {
                    // Do not spin on a cluster that refuses everything at once.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Open loop: operations start at a fixed rate whatever the cluster does, from a dedicated
/// timer thread (finer than the runtime's 1 ms timer wheel). Each operation's lateness is
/// measured when its task starts. At most `max_in_flight` operations are in flight: one due
/// past that is not sent (counted in `not_started` and `at_limit`), so the harness's memory
/// during the load stays bounded however far the cluster falls behind. Returns when `until`
/// passes and every started operation has finished.
pub async fn run_open(ctx: Arc<Ctx>, rate: f64, max_in_flight: u32, until: Instant) {
    let limit = u64::from(max_in_flight);
    ctx.stats.in_flight_limit.store(limit, Ordering::Relaxed);
    let handle = tokio::runtime::Handle::current();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let period = Duration::from_secs_f64(1.0 / rate);
    let pacer_ctx = ctx.clone();
    let pacer = std::thread::Builder::new()
        .name("open-loop".into())
        .spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            loop {
                let due = start + period.mul_f64(n as f64);
                if due >= until || pacer_ctx.stop.load(Ordering::Relaxed) {
                    break;
                }
                let now = Instant::now();
                if now >= until {
                    // Behind and out of time: the operations still due before the end were
                    // scheduled but can no longer start within the load.
                    let due_in_load =
                        ((until - start).as_secs_f64() / period.as_secs_f64()).ceil() as u64;
                    let left = due_in_load.saturating_sub(n);
                    pacer_ctx.stats.scheduled.fetch_add(left, Ordering::Relaxed);
                    pacer_ctx
                        .stats
                        .not_started
                        .fetch_add(left, Ordering::Relaxed);
                    break;
                }
                if due > now {
                    std::thread::sleep(due - now);
                }
                n += 1;
                let ctx = pacer_ctx.clone();
                ctx.stats.scheduled.fetch_add(1, Ordering::Relaxed);
                if ctx.stats.in_flight.load(Ordering::Relaxed) >= limit {
                    ctx.stats.not_started.fetch_add(1, Ordering::Relaxed);
                    ctx.stats.at_limit.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                ctx.stats.enter();
                let done_tx = done_tx.clone();
                handle.spawn(async move {
                    // A task that only gets to run after the load ended does not start its
                    // operation: the run ends on time, and the report counts it.
                    let started = Instant::now();
                    if started >= until {
                        ctx.stats.not_started.fetch_add(1, Ordering::Relaxed);
                        ctx.stats.leave();
                        drop(done_tx);
                        return;
                    }
                    let late = started.saturating_duration_since(due);
                    if late > Duration::from_millis(1) {
                        ctx.stats.late_1ms.fetch_add(1, Ordering::Relaxed);
                    }
                    ctx.stats
                        .max_late_us
                        .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
                    let client = ctx.take_client();
                    let op = ctx.generator.lock().expect("generator").next_op();
                    let done = execute(&ctx, client, op, Some(due)).await;
                    ctx.release_client(client, done.outcome);
                    ctx.stats.leave();
                    drop(done_tx);
                });
            }
        })
        .expect("start the open-loop pacer thread");
    // Every spawned operation holds a sender; the channel closes when the pacer and all
    // operations are done.
    while done_rx.recv().await.is_some() {}
    let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
}
