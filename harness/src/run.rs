//! `faultline run`: one experiment end to end. Launch the cluster, start the observer and
//! health checks, drive the load through the experiment's balancer while the nemesis fires its
//! schedule (journaling the balancer's ejections and counters as it goes), then heal, wait for
//! recovery, read every key, stop the cluster, and analyse the recorded files into the report.
//!
//! Everything the run does is on disk as it happens (`history.jsonl`, `events.jsonl`), so the
//! analysis is the same code as `faultline report <run-dir>`, and an aborted or killed run can
//! still be analysed.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::balancer::{BalancerError, Balancing, Transition};
use crate::cluster::{self, Cluster, ClusterSpec, ClusterView, EventSink, SharedView};
use crate::experiment::{Load, Loaded};
use crate::history::{EventKind, Outcome, Recorder, RecorderHandle, RunClock, RunPhase};
use crate::nemesis::{self, Nemesis};
use crate::report::{self, Report};
use crate::rundir::{self, RunMeta, UnexpectedExit};
use crate::workload::{self, Ctx, Generator, OpLimits};

/// How long a node gets to exit after SIGTERM at the end of a run.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long the cluster gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the balancer's ejections and re-admissions are journaled.
const OUTLIER_TICK: Duration = Duration::from_millis(20);
/// How often the balancer's counters are journaled during the load.
const STATS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results root (`results/` by default); the run goes to `<out>/<name>/<time>-<seed>/`.
    pub out: PathBuf,
    /// Executable that runs nodes (`faultline node ...`).
    pub exe: PathBuf,
    /// Show a live progress display on stderr.
    pub progress: bool,
    /// The command line that reproduces this run (recorded in the report).
    pub reproduce: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error("balancer: {0}")]
    Balancer(#[from] BalancerError),
}

impl RunError {
    /// Errors caused by the experiment as written, or by what it asks of this machine that the
    /// machine lacks (a system's binary, root or `ip`/`nft`/`tc` for netns mode): exit 254,
    /// rather than an internal error of faultline.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RunError::Balancer(_)
                | RunError::Cluster(cluster::ClusterError::MissingProgram { .. })
                | RunError::Cluster(cluster::ClusterError::Netns(
                    faultline_faults::netns::NetnsError::Unsupported(_)
                ))
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Run one loaded experiment. `abort` flips to true on Ctrl-C/SIGTERM: the load stops, faults
/// are healed, the cluster is stopped and a partial report marked `aborted` is written.
pub async fn run_experiment(
    loaded: &Loaded,
    opts: &RunOptions,
    mut abort: tokio::sync::watch::Receiver<bool>,
) -> Result<(PathBuf, Report), RunError> {
    let mut run = Run::open(loaded, opts)?;
    let (cluster, balancer) = run.start(&mut abort).await?;
    let (background, exits) = run.observe(&cluster).await;
    let (ctx, nemesis) = run.workload(&cluster, balancer, background.view.clone());
    let keys: Vec<String> = ctx.generator.lock().expect("generator").keys().to_vec();
    run.load(&ctx, &nemesis, &mut abort).await;
    run.heal_and_recover(&ctx, &nemesis, &keys, &mut abort)
        .await;
    run.stop(&ctx, cluster, background, &exits).await;
    run.finish()
}

/// One run in progress: its directory, its open files and what it has measured so far. Each
/// phase is one method, in the order [`run_experiment`] calls them; the files are finished
/// exactly once, by [`Run::finish`] or, on any early return, when the run is dropped.
struct Run<'a> {
    loaded: &'a Loaded,
    opts: &'a RunOptions,
    exp_dir: PathBuf,
    run_dir: PathBuf,
    clock: RunClock,
    sink: Arc<dyn EventSink>,
    /// Taken by the workload context.
    history: Option<Recorder>,
    files: Option<RunFiles>,
    meta: RunMeta,
    /// The balancer journal, running from the start of the load until the stop.
    balancer_journal: Option<tokio::task::JoinHandle<()>>,
}

/// The tasks that watch the cluster while the run lasts.
struct Background {
    view: SharedView,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

type Exits = Arc<std::sync::Mutex<Vec<UnexpectedExit>>>;

impl<'a> Run<'a> {
    /// Create the run directory, write the experiment as run, open the journal and history,
    /// and journal the start.
    fn open(loaded: &'a Loaded, opts: &'a RunOptions) -> Result<Run<'a>, RunError> {
        let exp = &loaded.experiment;
        let seed = loaded.seed;
        let started_utc =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let stamp = started_utc.replace([':', '-'], "");
        let exp_dir = opts.out.join(&exp.name);
        let run_dir = rundir::create(&exp_dir, &format!("{stamp}-{seed}")).map_err(io(&exp_dir))?;
        let yaml = serde_yaml::to_string(&loaded.as_run).expect("YAML values serialize");
        let exp_path = run_dir.join(rundir::EXPERIMENT);
        std::fs::write(&exp_path, yaml).map_err(io(&exp_path))?;
        if opts.progress {
            eprintln!("run directory: {}", run_dir.display());
        }

        let clock = RunClock::start();
        let origin_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .saturating_sub(clock.0.elapsed().as_millis() as u64);
        let events_path = run_dir.join(rundir::EVENTS);
        let (events, events_handle) = Recorder::create(&events_path).map_err(io(&events_path))?;
        let history_path = run_dir.join(rundir::HISTORY);
        let (history, history_handle) =
            Recorder::create(&history_path).map_err(io(&history_path))?;
        let sink: Arc<dyn EventSink> = Arc::new((events, clock));
        let files = RunFiles {
            sink: sink.clone(),
            events: events_handle,
            history: history_handle,
        };
        sink.event(EventKind::RunStart {
            experiment: exp.name.clone(),
            seed,
            unix_ms: Some(origin_unix_ms),
        });
        Ok(Run {
            loaded,
            opts,
            exp_dir,
            run_dir,
            clock,
            sink,
            history: Some(history),
            files: Some(files),
            meta: RunMeta {
                started_utc,
                reproduce: opts.reproduce.clone(),
                ..RunMeta::default()
            },
            balancer_journal: None,
        })
    }

    fn experiment(&self) -> &'a crate::experiment::Experiment {
        &self.loaded.experiment
    }

    /// Launch: the cluster up and ready, with its balancer. A failed start-up ends the run
    /// here: the journal says why and the files close.
    async fn start(
        &mut self,
        abort: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(Arc<Cluster>, Balancing), RunError> {
        let started = start_cluster(
            self.loaded,
            self.opts,
            &self.run_dir,
            self.sink.as_ref(),
            abort,
        )
        .await;
        match started {
            Ok((cluster, balancer, ready)) => {
                self.meta.ready_ms = Some(ready.as_secs_f64() * 1000.0);
                Ok((cluster, balancer))
            }
            Err(e) => {
                self.finish_files(true, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Start the observer, the health checks and the exit watch, and let the observer fill
    /// the view before the first operation.
    async fn observe(&self, cluster: &Arc<Cluster>) -> (Background, Exits) {
        let exp = self.experiment();
        let every = exp.observe_every.0.max(Duration::from_millis(1));
        let view: SharedView = Arc::new(RwLock::new(ClusterView::new(&cluster.ids())));
        let mut tasks =
            cluster::spawn_observer(&cluster.nodes, view.clone(), every, self.sink.clone());
        tasks.extend(cluster::spawn_health_checks(
            &cluster.nodes,
            view.clone(),
            (&exp.balancer.health).into(),
        ));
        let exits: Exits = Arc::default();
        tasks.push(spawn_exit_watch(
            cluster.clone(),
            self.sink.clone(),
            self.clock,
            exits.clone(),
        ));
        tokio::time::sleep(every * 2).await;
        (Background { view, tasks }, exits)
    }

    /// The workload context (clients, balancer, generator, history) and the nemesis.
    fn workload(
        &mut self,
        cluster: &Arc<Cluster>,
        balancer: Balancing,
        view: SharedView,
    ) -> (Arc<Ctx>, Arc<Nemesis>) {
        let exp = self.experiment();
        let seed = self.loaded.seed;
        let generator =
            Generator::new(seed, exp.workload.keys, exp.workload.mix, exp.workload.kind);
        let ctx = Ctx::new(
            cluster.nodes.clone(),
            view.clone(),
            balancer,
            self.history
                .take()
                .expect("the history recorder is taken once"),
            self.clock,
            generator,
            OpLimits {
                timeout: exp.workload.timeout.0,
                max_tries: exp.balancer.max_tries,
                try_timeout: exp.balancer.try_timeout.map(|d| d.0),
            },
        );
        let nemesis = Nemesis::new(cluster.clone(), view, self.sink.clone(), seed);
        (Arc::new(ctx), nemesis)
    }

    /// The load, with the fault schedule and the balancer journal, until the duration is up or
    /// `abort` fires.
    async fn load(
        &mut self,
        ctx: &Arc<Ctx>,
        nemesis: &Arc<Nemesis>,
        abort: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        let exp = self.experiment();
        let sink = self.sink.clone();
        let sink = sink.as_ref();
        sink.event(EventKind::phase(RunPhase::Load));
        let load_start = Instant::now();
        self.meta.load_start_ns = self.clock.at(load_start);
        let until = load_start + exp.duration.0;
        journal_balancer_stats(ctx, sink, false);
        self.balancer_journal = Some(spawn_balancer_journal(
            ctx.clone(),
            self.sink.clone(),
            self.clock,
            until,
        ));
        let fault_tasks = nemesis.spawn_schedule(
            nemesis::expand(&exp.faults, exp.duration.0, self.loaded.seed),
            load_start,
        );
        let progress = self
            .opts
            .progress
            .then(|| spawn_progress(ctx.clone(), nemesis.clone(), load_start, exp.duration.0));
        let mut load = {
            let ctx = ctx.clone();
            let mode = exp.workload.load;
            tokio::spawn(async move {
                match mode {
                    Load::Open {
                        rate,
                        max_in_flight,
                    } => workload::run_open(ctx, rate.per_second, max_in_flight, until).await,
                    Load::Closed { concurrency } => {
                        workload::run_closed(ctx, concurrency, until).await
                    }
                }
            })
        };
        tokio::select! {
            _ = &mut load => {}
            _ = abort.changed() => {
                self.abort();
                // No new operation starts; those in flight end within their timeout.
                ctx.stop.store(true, Ordering::Relaxed);
                let _ = tokio::time::timeout(exp.workload.timeout.0 + Duration::from_secs(2), load).await;
            }
        }
        self.meta.load_end_ns = self.clock.ns();
        journal_outliers(ctx, sink, self.clock);
        journal_balancer_stats(ctx, sink, true);
        for t in fault_tasks {
            t.abort();
        }
        if let Some(p) = progress {
            p.abort();
            let _ = p.await;
        }
        let open = matches!(exp.workload.load, Load::Open { .. });
        self.meta.load = Some(ctx.stats.summary(open));
    }

    /// Mark the run aborted (Ctrl-C or SIGTERM).
    fn abort(&mut self) {
        self.meta.aborted = true;
        self.meta.abort_reason = Some("interrupted (SIGINT/SIGTERM)".into());
    }

    /// Heal every fault; unless aborted, wait for the cluster to take writes again and read
    /// every key.
    async fn heal_and_recover(
        &mut self,
        ctx: &Arc<Ctx>,
        nemesis: &Arc<Nemesis>,
        keys: &[String],
        abort: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        self.sink.event(EventKind::phase(RunPhase::Heal));
        nemesis.heal_all().await;
        if self.meta.aborted {
            return;
        }
        self.sink.event(EventKind::phase(RunPhase::Recover));
        let deadline = Instant::now() + self.experiment().recover_timeout.0;
        tokio::select! {
            ok = recover_and_read(ctx, keys, deadline) => self.meta.recovered = Some(ok),
            _ = abort.changed() => self.abort(),
        }
    }

    /// Stop the watchers and the cluster; journal every node's exit.
    async fn stop(
        &mut self,
        ctx: &Ctx,
        cluster: Arc<Cluster>,
        background: Background,
        exits: &Exits,
    ) {
        self.sink.event(EventKind::phase(RunPhase::Stop));
        for t in background.tasks {
            t.abort();
        }
        if let Some(journal) = self.balancer_journal.take() {
            journal.abort();
            let _ = journal.await;
        }
        journal_outliers(ctx, self.sink.as_ref(), self.clock);
        {
            let c = cluster.clone();
            let _ = tokio::task::spawn_blocking(move || c.stop(STOP_GRACE)).await;
        }
        for n in &cluster.nodes {
            if let Some(status) = n.process().and_then(|p| p.exit_status()) {
                self.sink.event(EventKind::NodeExit {
                    node: n.id.clone(),
                    status: status.to_string(),
                    expected: true,
                });
            }
        }
        self.meta.unexpected_exits = exits.lock().expect("exits").clone();
    }

    /// Close the files, write `run.json`, analyse the run into its report, and only then point
    /// `latest` at it.
    fn finish(mut self) -> Result<(PathBuf, Report), RunError> {
        self.finish_files(self.meta.aborted, self.meta.abort_reason.clone());
        let meta_path = self.run_dir.join(rundir::RUN_META);
        std::fs::write(
            &meta_path,
            serde_json::to_vec_pretty(&self.meta).expect("run meta serializes"),
        )
        .map_err(io(&meta_path))?;
        let report = report::analyze_and_write(&self.run_dir)?;
        if let Err(e) = rundir::point_latest(&self.run_dir, false) {
            tracing::warn!(
                "cannot point {}/latest at this run: {e}",
                self.exp_dir.display()
            );
        }
        Ok((std::mem::take(&mut self.run_dir), report))
    }

    /// Journal the end and close the files (once).
    fn finish_files(&mut self, aborted: bool, reason: Option<String>) {
        if let Some(files) = self.files.take() {
            files.finish(aborted, reason);
        }
    }
}

impl Drop for Run<'_> {
    /// A run that ends on an error past the start still closes its files, marked aborted.
    fn drop(&mut self) {
        self.finish_files(true, Some("the run ended on an error".into()));
    }
}

/// Start-up: find the target's programs, launch the cluster, journal each node's pid, build
/// the balancer and wait until the cluster is ready (or `abort` fires). On any error the
/// cluster is stopped here, so the caller only has to close its files.
async fn start_cluster(
    loaded: &Loaded,
    opts: &RunOptions,
    run_dir: &Path,
    sink: &dyn EventSink,
    abort: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(Arc<Cluster>, Balancing, Duration), RunError> {
    let exp = &loaded.experiment;
    // The programs a real system runs are looked up now, so a missing package is named
    // before anything starts.
    exp.target.system.check_host()?;
    let spec = ClusterSpec {
        kind: exp.target.kind,
        system: exp.target.system.clone(),
        nodes: exp.target.nodes,
        settings: exp.target.settings.clone(),
        bugs: exp.target.bugs.clone(),
        exe: opts.exe.clone(),
        run_dir: run_dir.to_owned(),
        pool: exp.balancer.connections_per_node as usize,
        network: exp.network.mode,
        netns_proxies: exp.faults.iter().any(|f| f.needs_link_proxy()),
    };
    sink.event(EventKind::phase(RunPhase::Launch));
    let cluster = Arc::new(Cluster::launch(spec).await?);
    let stop = |cluster: Arc<Cluster>| async move {
        let _ = tokio::task::spawn_blocking(move || cluster.stop(STOP_GRACE)).await;
    };
    // The experiment was checked when it was loaded (weights name nodes of the cluster);
    // this is the last line of defence.
    let balancer = match Balancing::new(&exp.balancer, &cluster.ids(), loaded.seed) {
        Ok(b) => b,
        Err(e) => {
            stop(cluster).await;
            return Err(e.into());
        }
    };
    for n in &cluster.nodes {
        if let Some(p) = n.process() {
            sink.event(EventKind::NodeStart {
                node: n.id.clone(),
                pid: p.pid(),
            });
        }
    }
    let ready = tokio::select! {
        r = cluster.wait_ready(READY_TIMEOUT) => r,
        _ = abort.changed() => Err(cluster::ClusterError::NotReady {
            waited: Duration::ZERO,
            detail: "interrupted".into(),
        }),
    };
    match ready {
        Ok(d) => Ok((cluster, balancer, d)),
        Err(e) => {
            stop(cluster).await;
            Err(e.into())
        }
    }
}

/// The run's journal and history files, open while the run lasts.
struct RunFiles {
    sink: Arc<dyn EventSink>,
    events: RecorderHandle,
    history: RecorderHandle,
}

impl RunFiles {
    /// Journal the end of the run, then close both files once everything is on disk.
    fn finish(self, aborted: bool, reason: Option<String>) {
        self.sink.event(EventKind::RunEnd { aborted, reason });
        if let Err(e) = self.events.finish() {
            tracing::error!("events.jsonl: {e}");
        }
        if let Err(e) = self.history.finish() {
            tracing::error!("history.jsonl: {e}");
        }
    }
}

/// After the load: wait until a write succeeds again, then read every key until each read
/// succeeds (the final reads catch lost writes). True when all of that finished in time.
async fn recover_and_read(ctx: &Arc<Ctx>, keys: &[String], deadline: Instant) -> bool {
    let client = u32::MAX - 1;
    let mut recovered = false;
    while Instant::now() < deadline {
        let op = ctx.generator.lock().expect("generator").next_write();
        if workload::execute(ctx, client, op, None).await.outcome == Outcome::Ok {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all_read = recovered;
    for (i, key) in keys.iter().enumerate() {
        let reader = u32::MAX - 2 - i as u32;
        let mut done = false;
        while Instant::now() < deadline {
            let op = faultline_protocol::Op::Read { key: key.clone() };
            if workload::execute(ctx, reader, op, None).await.outcome == Outcome::Ok {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        all_read &= done;
    }
    all_read
}

/// Journal the balancer's ejections and re-admissions since the last call, dated when they
/// happened.
fn journal_outliers(ctx: &Ctx, sink: &dyn EventSink, clock: RunClock) {
    let ids = ctx.balancer.node_ids();
    for e in ctx.balancer.drain_events(Instant::now()) {
        let node = ids
            .get(e.node)
            .cloned()
            .unwrap_or_else(|| e.node.to_string());
        let kind = match e.transition {
            Transition::Ejected { duration, count } => EventKind::Ejected {
                node,
                duration_ms: duration.as_secs_f64() * 1000.0,
                count,
            },
            Transition::Readmitted => EventKind::Readmitted { node },
        };
        sink.event_at(clock.at(e.at), kind);
    }
}

/// Journal the balancer's counters now (`last`: the load has ended).
fn journal_balancer_stats(ctx: &Ctx, sink: &dyn EventSink, last: bool) {
    sink.event(EventKind::BalancerStats {
        nodes: ctx.balancer.stats(),
        ops: ctx.stats.invoked.load(Ordering::Relaxed),
        retries: ctx.stats.retries.load(Ordering::Relaxed),
        retries_denied: ctx.balancer.retries_denied(),
        last,
    });
}

/// Journal outlier transitions every [`OUTLIER_TICK`] (re-admitting nodes whose time is up)
/// until aborted, and the balancer's counters every [`STATS_EVERY`] until `stats_until`.
fn spawn_balancer_journal(
    ctx: Arc<Ctx>,
    sink: Arc<dyn EventSink>,
    clock: RunClock,
    stats_until: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next_stats = Instant::now() + STATS_EVERY;
        let mut tick = tokio::time::interval(OUTLIER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            journal_outliers(&ctx, sink.as_ref(), clock);
            let now = Instant::now();
            if now >= next_stats && now < stats_until {
                journal_balancer_stats(&ctx, sink.as_ref(), false);
                while next_stats <= now {
                    next_stats += STATS_EVERY;
                }
            }
        }
    })
}

/// Watch for node processes that exit without the harness asking; journal every exit. A
/// sidecar (a Redis Sentinel) that exits while the cluster runs is always unexpected: the
/// harness only stops sidecars with the cluster, and takes them out of their slots then.
fn spawn_exit_watch(
    cluster: Arc<Cluster>,
    sink: Arc<dyn EventSink>,
    clock: RunClock,
    exits: Arc<std::sync::Mutex<Vec<UnexpectedExit>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: Vec<Option<u32>> = vec![None; cluster.nodes.len()];
        let mut sidecars_seen: Vec<bool> = vec![false; cluster.sidecars.len()];
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            for (i, s) in cluster.sidecars.iter().enumerate() {
                if let Some(status) = s.exit_status().filter(|_| !sidecars_seen[i]) {
                    sidecars_seen[i] = true;
                    exits.lock().expect("exits").push(UnexpectedExit {
                        node: format!("{} (sidecar)", s.node),
                        at_ms: clock.ns() as f64 / 1e6,
                        status: status.to_string(),
                        log_tail: cluster::tail(&s.spec.stdout, 20),
                    });
                }
            }
            for (i, n) in cluster.nodes.iter().enumerate() {
                let Some(p) = n.process() else { continue };
                let Some(status) = p.exit_status() else {
                    continue;
                };
                if seen[i] == Some(p.pid()) {
                    continue;
                }
                seen[i] = Some(p.pid());
                let expected = n.expect_down.load(Ordering::SeqCst);
                sink.event(EventKind::NodeExit {
                    node: n.id.clone(),
                    status: status.to_string(),
                    expected,
                });
                if !expected {
                    exits.lock().expect("exits").push(UnexpectedExit {
                        node: n.id.clone(),
                        at_ms: clock.ns() as f64 / 1e6,
                        status: status.to_string(),
                        log_tail: n.log_tail(20),
                    });
                }
            }
        }
    })
}

/// The live progress line: elapsed, ops/s, ok share, the active fault. On a terminal it
/// redraws in place; elsewhere (CI logs) it prints a line every 5 seconds.
fn spawn_progress(
    ctx: Arc<Ctx>,
    nemesis: Arc<Nemesis>,
    start: Instant,
    duration: Duration,
) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        if tty {
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut last = (Instant::now(), 0u64);
        let mut last_print = Instant::now();
        // Clears the bar when this task is aborted at the end of the load.
        let _clear = BarGuard(bar.clone());
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let s = &ctx.stats;
            let (ok, fail, info) = (
                s.ok.load(Ordering::Relaxed),
                s.fail.load(Ordering::Relaxed),
                s.info.load(Ordering::Relaxed),
            );
            let done = ok + fail + info;
            let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
            last = (Instant::now(), done);
            let share = if done == 0 {
                1.0
            } else {
                ok as f64 / done as f64
            };
            let fault = nemesis
                .describe
                .lock()
                .expect("describe")
                .clone()
                .unwrap_or_else(|| "-".into());
            let elapsed = start.elapsed().min(duration);
            let msg = format!(
                "{:>5.1}s/{:.0}s  {:>6.0} ops/s  ok {:>5.1}%  fault: {fault}",
                elapsed.as_secs_f64(),
                duration.as_secs_f64(),
                rate,
                share * 100.0
            );
            if tty {
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(msg);
            } else if last_print.elapsed() >= Duration::from_secs(5) {
                eprintln!("  {msg}");
                last_print = Instant::now();
            }
        }
    })
}

/// Clears the progress bar when the progress task is aborted.
struct BarGuard(indicatif::ProgressBar);
impl Drop for BarGuard {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
