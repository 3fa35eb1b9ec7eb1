//! The `faultline` command line: run experiments, check histories, render reports, and run a
//! reference node (which is how the harness starts its own nodes).
//!
//! Exit codes: 0 pass (valid, every SLO met, or the verdict `expect:` asked for), 1 fail (a
//! consistency violation or a broken SLO), 2 unknown (a checker ran out of budget, or the run
//! was interrupted before it could reach a verdict), 254 bad input, 255 internal error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use faultline::experiment::{self, Override};
use faultline::report;
use faultline::run::{self, RunOptions};

const EXIT_BAD_INPUT: u8 = 254;
const EXIT_INTERNAL: u8 = 255;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Chaos and high-availability benchmarking harness",
    after_help = "Exit codes: 0 pass, 1 fail (violation or broken SLO), 2 unknown \
                  (checker budget ran out, or the run was interrupted), 254 bad input, \
                  255 internal error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment file, or every experiment in a suite directory.
    Run {
        /// experiment.yaml, or a directory of them.
        path: PathBuf,
        /// Results root; each run goes to <out>/<experiment>/<UTC time>-<seed>/.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Seed for every random choice (overrides the file's `seed:`).
        #[arg(long)]
        seed: Option<u64>,
        /// Override a field: --set target.nodes=5 --set workload.rate=1000/s
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<Override>,
        /// No live progress display.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a recorded history for linearizability, lost writes and stale reads: a faultline
    /// history.jsonl (or run directory), a Jepsen EDN history, or Porcupine's kv test data.
    /// Prints the report as JSON on stdout; exit 0 valid, 1 invalid, 2 unknown, 254 bad input.
    Check {
        /// The history file, or a run directory holding history.jsonl.
        history: PathBuf,
        /// Input format. Default: faultline for a directory, .jsonl or .json; jepsen-edn for
        /// .edn; otherwise guessed from the content (EDN with get/put/append: porcupine-kv).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Consistency model. Default: kv-append for histories of get/put/append, else
        /// cas-register.
        #[arg(long, value_enum)]
        model: Option<ModelArg>,
        /// Time budget; keys not finished in time are `unknown`.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Memory budget for the search, e.g. 512MiB (default 2GiB); keys that would need more
        /// are `unknown`.
        #[arg(long, value_name = "SIZE", value_parser = faultline::check::parse_size)]
        memory: Option<u64>,
        /// Write a self-contained HTML view of each invalid key's counterexample into this
        /// directory, as <key>.html.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
    },
    /// Re-render report.json, summary.md, report.html and counterexamples/ from a run
    /// directory's recorded files (also for a run that was interrupted or whose harness was
    /// killed).
    Report { run_dir: PathBuf },
    /// Check a run against rules (rules file: `rules: [..]`, e.g. `recovery_p99 <= 1s`,
    /// `throughput >= baseline * 0.9`). Exit 0 when every rule holds, 1 naming each broken
    /// rule, 254 for a bad rules file or a missing report or baseline.
    Gate {
        /// A run directory, its report.json, or a suite's results directory (each
        /// experiment's `latest` run is gated).
        run: PathBuf,
        /// The rules file (YAML).
        #[arg(long)]
        rules: PathBuf,
        /// The baseline for relative rules: a report.json or run directory, or a directory of
        /// `<experiment>.json` reports (`results/baselines/`) or of suite results.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Also write the outcome as JUnit XML (one test case per rule).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Line up reports metric by metric, with absolute and relative deltas against the first:
    /// two or more runs (run directories or report.json files), two or more suite results
    /// directories (experiments matched by name), or one suite results directory (its
    /// experiments against the first that ran). Exit 0, or 254 for a missing or bad input.
    Compare {
        /// Run directories, report.json files, or suite results directories.
        #[arg(required = true, value_name = "REPORT|RUN-DIR|SUITE-DIR")]
        inputs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: report::compare::Format,
    },
    /// Remove what killed runs left behind: the namespaces (and the bridge, veths, nftables
    /// tables and qdiscs inside them) and host links their journals name, and only those.
    /// Without arguments, every run registered in /run/faultline; or the given run directories
    /// or journal files. Idempotent.
    Cleanup { paths: Vec<PathBuf> },
    /// List what this build supports.
    List,
    /// Run one reference node (the harness starts its nodes this way). Either `--config FILE`,
    /// or the same on the command line (`--id`, `--client`, `--peer`, `--peers`,
    /// `--data-dir`), as a `kind: command` template would pass it.
    Node {
        /// Node kind: primary-backup, raft or paxos.
        kind: String,
        /// The node's configuration file (JSON, as the harness writes it).
        #[arg(long, conflicts_with_all = ["id", "client", "peer", "peers", "data_dir", "settings"])]
        config: Option<PathBuf>,
        /// Node id.
        #[arg(long, requires_all = ["client", "peer", "data_dir"])]
        id: Option<String>,
        /// Address to serve clients on.
        #[arg(long)]
        client: Option<std::net::SocketAddr>,
        /// Address to accept peers on.
        #[arg(long)]
        peer: Option<std::net::SocketAddr>,
        /// The other nodes, as `n2=HOST:PORT,n3=HOST:PORT`.
        #[arg(long, default_value = "")]
        peers: String,
        /// Directory for durable state.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Protocol settings as a JSON object, as in '{"heartbeat": "50ms"}'.
        #[arg(long)]
        settings: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModelArg {
    Register,
    CasRegister,
    KvAppend,
}

impl From<ModelArg> for faultline::check::ModelKind {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::Register => Self::Register,
            ModelArg::CasRegister => Self::CasRegister,
            ModelArg::KvAppend => Self::KvAppend,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Faultline,
    JepsenEdn,
    PorcupineKv,
}

impl From<FormatArg> for faultline::history::import::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Faultline => Self::Faultline,
            FormatArg::JepsenEdn => Self::JepsenEdn,
            FormatArg::PorcupineKv => Self::PorcupineKv,
        }
    }
}

/// `faultline gate`: every rule against every report under `run`.
fn gate_cmd(
    run: &std::path::Path,
    rules_path: &std::path::Path,
    baseline: Option<&std::path::Path>,
    junit: Option<&std::path::Path>,
) -> ExitCode {
    use faultline::report::gate;
    let result = (|| -> Result<Vec<gate::RuleResult>, gate::GateError> {
        let text = std::fs::read_to_string(rules_path).map_err(|source| gate::GateError::Read {
            path: rules_path.to_owned(),
            source,
        })?;
        let rules = gate::parse_rules(rules_path, &text)?;
        let needs_baseline = rules.iter().find(|r| r.needs_baseline());
        if let (Some(r), None) = (needs_baseline, baseline) {
            return Err(gate::GateError::NoBaseline {
                rule: r.text.clone(),
            });
        }
        let mut outcomes = Vec::new();
        for g in gate::collect(run)? {
            let base = match (baseline, needs_baseline) {
                (Some(b), Some(_)) => Some(gate::baseline_for(b, &g.experiment)?),
                _ => None,
            };
            outcomes.extend(gate::check(
                &g.experiment,
                &rules,
                &g.report,
                base.as_ref(),
            )?);
        }
        Ok(outcomes)
    })();
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("faultline gate: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    print!("{}", gate::render_text(&outcomes));
    if let Some(path) = junit {
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, gate::render_junit(&outcomes))
            .and_then(|_| std::fs::rename(&tmp, path))
        {
            eprintln!("faultline gate: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_INTERNAL);
        }
    }
    let broken: Vec<&gate::RuleResult> = outcomes.iter().filter(|o| !o.ok).collect();
    if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        for o in broken {
            eprintln!(
                "faultline gate: broken rule `{}` ({}): actual {}, limit {}",
                o.rule, o.experiment, o.actual, o.limit
            );
        }
        ExitCode::from(1)
    }
}

/// Raise the soft limit on open files to the hard limit, as servers do: a node serving
/// thousands of clients, or a harness relaying every link, needs more than the usual 1,024.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_BAD_INPUT),
            };
        }
    };
    if matches!(cli.command, Command::Node { .. } | Command::Run { .. }) {
        raise_open_files_limit();
    }
    match cli.command {
        Command::Node {
            kind,
            config,
            id,
            client,
            peer,
            peers,
            data_dir,
            settings,
        } => {
            let cfg = match (config, id, client, peer, data_dir) {
                (Some(path), ..) => {
                    faultline_protocol::NodeConfig::load(&path).map_err(|e| e.to_string())
                }
                (None, Some(id), Some(client_addr), Some(peer_addr), Some(data_dir)) => {
                    node_config_from_flags(id, client_addr, peer_addr, &peers, data_dir, settings)
                }
                _ => Err("give --config FILE, or --id, --client, --peer and --data-dir".into()),
            };
            match cfg {
                Ok(cfg) => node(&kind, cfg),
                Err(e) => {
                    eprintln!("faultline node: {e}");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Command::Run {
            path,
            out,
            seed,
            set,
            quiet,
        } => {
            init_logging();
            run_cmd(&path, out, seed, &set, quiet)
        }
        Command::Check {
            history,
            format,
            model,
            timeout,
            memory,
            html,
        } => check_cmd(&history, format, model, timeout, memory, html.as_deref()),
        Command::Report { run_dir } => match report::analyze_and_write(&run_dir) {
            Ok(r) => {
                if let Err(e) = faultline::rundir::point_latest(&run_dir, true) {
                    eprintln!("faultline report: cannot update `latest` beside the run: {e}");
                }
                eprint!("{}", report::render_summary(&r));
                ExitCode::from(r.exit_code())
            }
            Err(e) => {
                eprintln!("faultline report: {e}");
                ExitCode::from(if e.is_bad_input() {
                    EXIT_BAD_INPUT
                } else {
                    EXIT_INTERNAL
                })
            }
        },
        Command::Gate {
            run,
            rules,
            baseline,
            junit,
        } => gate_cmd(&run, &rules, baseline.as_deref(), junit.as_deref()),
        Command::Compare { inputs, format } => match report::compare::load(&inputs) {
            Ok(c) => {
                use std::io::Write;
                let out = report::compare::render(&c, format);
                match std::io::stdout().write_all(&out) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("faultline compare: cannot write the output: {e}");
                        ExitCode::from(EXIT_INTERNAL)
                    }
                }
            }
            Err(e) => {
                eprintln!("faultline compare: {e}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
        Command::Cleanup { paths } => cleanup(&paths),
        Command::List => {
            println!("targets:");
            for k in faultline::cluster::kind::KINDS {
                println!("  {:<16}{}", k.name, k.summary);
                if !k.known_bugs.is_empty() {
                    println!("  {:<16}planted bugs: {}", "", k.known_bugs.join(", "));
                }
            }
            println!("backends:   process");
            println!("network:    proxy (default), netns (root), direct");
            println!(
                "faults:     kill, terminate, pause, restart, crash-loop, amnesia, slow, \
                 partition, link"
            );
            println!("selectors:  leader (primary), follower (backup), random, minority, majority, all, nN");
            let kinds: Vec<&str> = faultline::experiment::BalancerKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect();
            println!("balancers:  {}", kinds.join(", "));
            println!(
                "            with health checks, outlier ejection (`outlier:`) and a retry \
                 budget (`retry_budget:`)"
            );
            println!(
                "workloads:  register, cas-register (open loop `rate`, closed loop `concurrency`)"
            );
            println!("models:     register, cas-register, kv-append");
            println!("histories:  faultline (jsonl), jepsen-edn, porcupine-kv");
            println!("checks:     linearizable, lost-writes, stale-reads, election-safety");
            ExitCode::SUCCESS
        }
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// A node's configuration from `faultline node` flags.
fn node_config_from_flags(
    id: String,
    client_addr: std::net::SocketAddr,
    peer_addr: std::net::SocketAddr,
    peers: &str,
    data_dir: PathBuf,
    settings: Option<String>,
) -> Result<faultline_protocol::NodeConfig, String> {
    let mut map = std::collections::BTreeMap::new();
    for item in peers.split(',').filter(|p| !p.trim().is_empty()) {
        let (peer, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--peers: `{item}` is not ID=HOST:PORT"))?;
        let addr = addr
            .trim()
            .parse()
            .map_err(|e| format!("--peers: `{item}`: {e}"))?;
        map.insert(peer.trim().to_string(), addr);
    }
    let settings = match settings {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str(&text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => return Err("--settings: give a JSON object".into()),
            Err(e) => return Err(format!("--settings: {e}")),
        },
    };
    Ok(faultline_protocol::NodeConfig {
        id,
        client_addr,
        peer_addr,
        peers: map,
        data_dir,
        settings,
        bugs: Vec::new(),
    })
}

fn node(kind: &str, cfg: faultline_protocol::NodeConfig) -> ExitCode {
    use faultline::cluster::kind;
    let Some(node_main) = kind::find(kind).and_then(|k| k.node_main) else {
        let runnable: Vec<&str> = kind::KINDS
            .iter()
            .filter(|k| k.node_main.is_some())
            .map(|k| k.name)
            .collect();
        eprintln!(
            "faultline node: unknown node kind `{kind}` (known: {})",
            runnable.join(", ")
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let result = node_main(cfg);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline node {kind}: {e}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

fn run_cmd(
    path: &std::path::Path,
    out: PathBuf,
    seed: Option<u64>,
    set: &[Override],
    quiet: bool,
) -> ExitCode {
    let files = match experiment::load_suite(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // Validate every experiment of a suite before running any.
    let mut loaded = Vec::new();
    for f in &files {
        match experiment::load_experiment(f, set, seed) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                eprintln!("faultline: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("faultline: cannot find my own executable: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faultline: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    rt.block_on(async move {
        let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
            for n in 0..2 {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                if n == 0 {
                    eprintln!("\nfaultline: interrupted; healing faults, stopping the cluster, writing a partial report (again to quit at once)");
                    let _ = abort_tx.send(true);
                } else {
                    eprintln!("faultline: quitting at once");
                    // Nodes die with us (PR_SET_PDEATHSIG).
                    std::process::exit(130);
                }
            }
        });
        let mut worst = 0u8;
        let mut reports: Vec<report::SuiteRun> = Vec::new();
        for l in &loaded {
            if *abort_rx.borrow() {
                break;
            }
            let reproduce = reproduce_command(l, set);
            eprintln!(
                "faultline: running {} (seed {}): {} x {} for {}",
                l.experiment.name,
                l.seed,
                l.experiment.target.nodes,
                l.experiment.target.kind.name,
                l.experiment.duration
            );
            let opts = RunOptions {
                out: out.clone(),
                exe: exe.clone(),
                progress: !quiet,
                reproduce,
            };
            match run::run_experiment(l, &opts, abort_rx.clone()).await {
                Ok((dir, report)) => {
                    eprint!("{}", report::render_summary(&report));
                    eprintln!("results: {}", dir.display());
                    worst = worst_exit(worst, report.exit_code());
                    reports.push((l.experiment.name.clone(), Ok(report)));
                }
                Err(e) => {
                    eprintln!("faultline: {} failed: {e}", l.experiment.name);
                    let code = if e.is_bad_input() {
                        EXIT_BAD_INPUT
                    } else {
                        EXIT_INTERNAL
                    };
                    worst = worst_exit(worst, code);
                    reports.push((l.experiment.name.clone(), Err(e.to_string())));
                }
            }
        }
        if loaded.len() > 1 {
            let summary = report::render_suite_summary(&path.display().to_string(), &reports);
            eprintln!("\n{summary}");
            let file = out.join("suite-summary.md");
            match std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&file, &summary)) {
                Ok(()) => eprintln!("suite summary: {}", file.display()),
                Err(e) => {
                    eprintln!("faultline: cannot write {}: {e}", file.display());
                    worst = worst_exit(worst, EXIT_INTERNAL);
                }
            }
        }
        ExitCode::from(worst)
    })
}

/// Combine exit codes across a suite: internal error > fail > unknown > pass.
fn worst_exit(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        2 => 1,
        1 => 2,
        _ => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn reproduce_command(l: &experiment::Loaded, set: &[Override]) -> String {
    let mut cmd = format!("faultline run {} --seed {}", l.path.display(), l.seed);
    for o in set {
        cmd.push_str(&format!(" --set '{}'", o.raw));
    }
    cmd
}

fn check_cmd(
    path: &std::path::Path,
    format: Option<FormatArg>,
    model: Option<ModelArg>,
    timeout: std::time::Duration,
    memory: Option<u64>,
    html: Option<&std::path::Path>,
) -> ExitCode {
    use faultline::check::{self, CheckOptions, ModelKind};
    use faultline::history::import::{self, Loaded};

    let bad_input = |e: &dyn std::fmt::Display| {
        eprintln!("faultline check: {e}");
        ExitCode::from(EXIT_BAD_INPUT)
    };
    let loaded = match import::load(path, format.map(Into::into)) {
        Ok(l) => l,
        Err(e) => return bad_input(&e),
    };
    let mut opts = CheckOptions {
        model: model.map_or(ModelKind::CasRegister, Into::into),
        time_budget: timeout,
        ..CheckOptions::default()
    };
    if let Some(bytes) = memory {
        opts.max_memory_bytes = bytes;
    }
    let (result, ops) = match &loaded {
        Loaded::Native(h) => (check::check(h, &opts), h.ops.len()),
        Loaded::Foreign(f) => {
            opts.model = model.map_or_else(|| check::ModelKind::default_for(f), Into::into);
            let result = match opts.model {
                ModelKind::KvAppend => f.to_kv().map(|kv| check::check_kv(&kv, &opts)),
                _ => f.to_history().map(|h| check::check(&h, &opts)),
            };
            match result {
                Ok(r) => (r, f.ops.len()),
                Err(e) => return bad_input(&e),
            }
        }
    };
    if let Some(dir) = html {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            check::counterexample_pages(&result)
                .into_iter()
                .try_for_each(|(name, page)| std::fs::write(dir.join(name), page))
        });
        if let Err(e) = written {
            return bad_input(&format!("cannot write to {}: {e}", dir.display()));
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&result).expect("check results serialize")
    );
    let verdict = result.verdict();
    eprintln!(
        "{}: {} under {} ({ops} ops, {} keys: {} invalid, {} unknown; lost writes {}, stale reads {})",
        path.display(),
        verdict.as_str(),
        result.model,
        result.keys.checked,
        result.keys.invalid,
        result.keys.unknown,
        result.lost_writes,
        result.stale_reads
    );
    ExitCode::from(report::verdict_exit(verdict))
}

/// `faultline cleanup`: each journal named (a run directory means its `netns.journal`), or
/// every registered one; prints what it removed. Exit 0 when every journal was read.
fn cleanup(paths: &[PathBuf]) -> ExitCode {
    use faultline_faults::netns;
    let journals: Vec<PathBuf> = if paths.is_empty() {
        netns::registered()
    } else {
        paths
            .iter()
            .filter_map(|p| {
                if !p.is_dir() {
                    return Some(p.clone());
                }
                let journal = p.join("netns.journal");
                if journal.exists() {
                    return Some(journal);
                }
                // Proxy and direct runs create nothing that outlives their harness: nodes get
                // PR_SET_PDEATHSIG, proxies are the harness's own threads.
                println!(
                    "{}: nothing to clean (no netns.journal: not a netns run)",
                    p.display()
                );
                None
            })
            .collect()
    };
    let mut failed = false;
    let (mut holders, mut links) = (0, 0);
    for j in &journals {
        match netns::cleanup(j) {
            Ok(done) => {
                if let Some(pid) = done.live {
                    println!(
                        "{}: left alone, its harness (pid {pid}) is still running",
                        j.display()
                    );
                }
                for h in &done.holders_killed {
                    println!("{}: killed namespace holder ({h})", j.display());
                }
                for l in &done.links_removed {
                    println!("{}: deleted link {l}", j.display());
                }
                holders += done.holders_killed.len();
                links += done.links_removed.len();
            }
            Err(e) => {
                eprintln!("faultline cleanup: {e}");
                failed = true;
            }
        }
    }
    println!(
        "cleanup: {} journal(s), {holders} namespace(s) and {links} link(s) removed",
        journals.len()
    );
    if failed {
        ExitCode::from(EXIT_BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    }
}
