//! 2 and 3. Memory and idle wake-ups.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use crate::procfs::{Mem, ctxt, group_unique, mem};
use crate::report::{Raw, kib, ratio};
use crate::setup::{Mode, Role, Setup, stop_all};
use crate::{Config, Res, SETTLE, Tool};

pub struct Footprint {
    pub tool: Tool,
    pub n: usize,
    /// Supervisor processes only (no scanner, no sentinel).
    pub sup: Mem,
    pub sup_procs: usize,
    pub sup_unique: u64,
    /// Every process of the tool but the children.
    pub all: Mem,
    pub all_procs: usize,
    pub all_unique: u64,
    /// The part of `all_unique` in file mappings.
    pub all_unique_file: u64,
    /// Context switches over the idle window, by role: (role, processes, switches).
    pub idle: Vec<(Role, usize, u64)>,
    /// From the first spawn until all N children had stamped, ms.
    pub running_ms: f64,
}

pub fn footprints(cfg: &Config, n: usize, raw: &mut Raw) -> Res<Vec<Footprint>> {
    let tools = cfg.available(&[
        Tool::Daemonic,
        Tool::DaemonicMany,
        Tool::Daemon1,
        Tool::Runit,
        Tool::S6,
        Tool::Daemontools,
        Tool::Supervisord,
    ]);
    let mut setups = Vec::new();
    let result = (|| -> Res<Vec<Footprint>> {
        let mut running = Vec::new();
        for &t in &tools {
            let t0 = Instant::now();
            let s = Setup::start(
                cfg,
                t,
                n,
                cfg.dir.join(format!("mem-{n}")).join(t.key()),
                Mode::Fast,
            )?;
            s.wait_started()?;
            // From the first spawn until every child has stamped: all N running.
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            raw.row(
                "memory",
                t,
                n,
                0,
                "all",
                0,
                "all_running_ms",
                format!("{ms:.1}"),
            );
            setups.push(s);
            running.push(ms);
        }
        std::thread::sleep(SETTLE);
        let mut fps = Vec::new();
        let mut procs = Vec::new();
        for (s, &running_ms) in setups.iter().zip(&running) {
            let roles: Vec<(i32, Role)> = s
                .roles(cfg)
                .into_iter()
                .filter(|r| r.1 != Role::Child)
                .collect();
            fps.push(footprint(s, &roles, running_ms, raw)?);
            procs.push(roles);
        }
        idle(cfg, &procs, &mut fps, raw)?;
        Ok(fps)
    })();
    stop_all(setups);
    result
}

/// The memory of one running setup's processes (`roles`, children left out).
fn footprint(s: &Setup, roles: &[(i32, Role)], running_ms: f64, raw: &mut Raw) -> Res<Footprint> {
    let n = s.n;
    let mut fp = Footprint {
        tool: s.tool,
        n,
        sup: Mem::default(),
        sup_procs: 0,
        sup_unique: 0,
        all: Mem::default(),
        all_procs: 0,
        all_unique: 0,
        all_unique_file: 0,
        idle: vec![],
        running_ms,
    };
    let mut sup_pids = vec![];
    for &(pid, role) in roles {
        let m = mem(pid)?;
        for (metric, v) in [
            ("private_clean_kib", m.private_clean),
            ("private_dirty_kib", m.private_dirty),
            ("pss_kib", m.pss),
            ("rss_kib", m.rss),
            ("vmpte_kib", m.pte),
        ] {
            raw.row("memory", s.tool, n, 0, role.key(), pid, metric, v);
        }
        fp.all.add(&m);
        fp.all_procs += 1;
        if role == Role::Supervisor {
            fp.sup.add(&m);
            fp.sup_procs += 1;
            sup_pids.push(pid);
        }
    }
    let all_pids: Vec<i32> = roles.iter().map(|r| r.0).collect();
    fp.sup_unique = group_unique(&sup_pids)?.0;
    (fp.all_unique, fp.all_unique_file) = group_unique(&all_pids)?;
    for (role, metric, v) in [
        ("supervisors", "group_unique_kib", fp.sup_unique),
        ("all", "group_unique_kib", fp.all_unique),
        ("all", "group_unique_file_kib", fp.all_unique_file),
    ] {
        raw.row("memory", s.tool, n, 0, role, 0, metric, v);
    }
    Ok(fp)
}

/// Idle: the context switches of every process at t, then at t + `--idle-secs`, into
/// each footprint's `idle`.
fn idle(cfg: &Config, procs: &[Vec<(i32, Role)>], fps: &mut [Footprint], raw: &mut Raw) -> Res<()> {
    let before: Vec<Vec<Option<u64>>> = procs
        .iter()
        .map(|rs| rs.iter().map(|&(p, _)| ctxt(p)).collect())
        .collect();
    std::thread::sleep(cfg.idle);
    for (i, rs) in procs.iter().enumerate() {
        let mut by: BTreeMap<Role, (usize, u64)> = BTreeMap::new();
        for (j, &(pid, role)) in rs.iter().enumerate() {
            let (Some(a), Some(b)) = (before[i][j], ctxt(pid)) else {
                return Err(format!(
                    "{}: process {pid} ended during the idle window",
                    fps[i].tool.label()
                ));
            };
            raw.row(
                "idle",
                fps[i].tool,
                fps[i].n,
                0,
                role.key(),
                pid,
                "ctxt_switches",
                b - a,
            );
            let e = by.entry(role).or_default();
            e.0 += 1;
            e.1 += b - a;
        }
        fps[i].idle = by.into_iter().map(|(r, (c, s))| (r, c, s)).collect();
    }
    Ok(())
}

pub fn memory_tables(
    cfg: &Config,
    n: usize,
    one: &[Footprint],
    many: &[Footprint],
    out: &mut String,
) {
    totals_table(one, many, out);
    if n > 1 {
        per_service_tables(n, one, many, out);
    }
    one_service_ratios(one, out);
    idle_table(cfg, one, many, out);
}

/// Every footprint, N=1 and N=`n`.
fn totals_table(one: &[Footprint], many: &[Footprint], out: &mut String) {
    let _ = writeln!(
        out,
        "\n### Memory (KiB): Private_Clean + Private_Dirty from smaps_rollup, summed; \
         *unique* = pages mapped by these processes only (pagemap + kpagecount)\n"
    );
    let _ = writeln!(
        out,
        "| tool | services | supervisor procs | supervisors: private (clean + dirty) | supervisors: unique | all procs | all: private | all: unique (of it in files) | all: Pss | all: VmPTE | all running after, ms |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for fp in one.iter().chain(many) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({} + {}) | {} | {} | {} | {} ({}) | {} | {} | {:.0} |",
            fp.tool.label(),
            fp.n,
            fp.sup_procs,
            kib(fp.sup.private()),
            fp.sup.private_clean,
            fp.sup.private_dirty,
            kib(fp.sup_unique),
            fp.all_procs,
            kib(fp.all.private()),
            kib(fp.all_unique),
            fp.all_unique_file,
            kib(fp.all.pss),
            kib(fp.all.pte),
            fp.running_ms
        );
    }
}

/// What each extra service costs: (N=`n` − N=1) ÷ (`n` − 1), and daemonic's ratios.
fn per_service_tables(n: usize, one: &[Footprint], many: &[Footprint], out: &mut String) {
    let _ = writeln!(
        out,
        "\n### Memory per extra service (KiB): (N={n} − N=1) ÷ {}\n",
        n - 1
    );
    let _ = writeln!(out, "| tool | all: private | all: unique | all: Pss |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let per = |fp1: &Footprint, fpn: &Footprint| {
        let d = (n - 1) as f64;
        (
            (fpn.all.private() as f64 - fp1.all.private() as f64) / d,
            (fpn.all_unique as f64 - fp1.all_unique as f64) / d,
            (fpn.all.pss as f64 - fp1.all.pss as f64) / d,
        )
    };
    let find = |v: &[Footprint], t: Tool| v.iter().position(|f| f.tool == t);
    let mut pers: Vec<(Tool, (f64, f64, f64))> = vec![];
    for fpn in many {
        let Some(a) = find(one, fpn.tool) else {
            continue;
        };
        let (p, u, s) = per(&one[a], fpn);
        pers.push((fpn.tool, (p, u, s)));
        let _ = writeln!(out, "| {} | {p:.1} | {u:.1} | {s:.1} |", fpn.tool.label());
    }
    let get = |t: Tool| pers.iter().find(|p| p.0 == t).map(|p| p.1);
    let _ = writeln!(
        out,
        "\n### Memory per extra service, ratios (daemonic ÷ tool, *unique* column)\n"
    );
    let _ = writeln!(
        out,
        "| tool | daemonic run -f ÷ tool | daemonic start ×N ÷ tool |"
    );
    let _ = writeln!(out, "|---|---:|---:|");
    for (t, (_, u, _)) in pers.iter().filter(|p| p.0.is_peer()) {
        let r = |d: Option<(f64, f64, f64)>| d.map_or("–".into(), |d| ratio(d.1 / u));
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            t.label(),
            r(get(Tool::DaemonicMany)),
            r(get(Tool::Daemonic))
        );
    }
}

/// Ratios for one service: `daemonic start` against each peer.
fn one_service_ratios(one: &[Footprint], out: &mut String) {
    if let Some(d) = one.iter().find(|f| f.tool == Tool::Daemonic) {
        let _ = writeln!(
            out,
            "\n### Memory for one service, ratios (`daemonic start` ÷ tool)\n"
        );
        let _ = writeln!(
            out,
            "| tool | supervisor alone: private | supervisor + sentinel / + scanner: private | supervisor + sentinel / + scanner: unique |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for fp in one.iter().filter(|f| f.tool.is_peer()) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                fp.tool.label(),
                ratio(d.sup.private() as f64 / fp.sup.private() as f64),
                ratio(d.all.private() as f64 / fp.all.private() as f64),
                ratio(d.all_unique as f64 / fp.all_unique as f64)
            );
        }
    }
}

/// The context switches over the idle window, by role.
fn idle_table(cfg: &Config, one: &[Footprint], many: &[Footprint], out: &mut String) {
    let _ = writeln!(
        out,
        "\n### Idle: context switches in {:?} (voluntary + involuntary, all threads)\n",
        cfg.idle
    );
    let _ = writeln!(
        out,
        "| tool | services | total | by role (processes: switches) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|");
    for fp in one.iter().chain(many) {
        let total: u64 = fp.idle.iter().map(|r| r.2).sum();
        let by: Vec<String> = fp
            .idle
            .iter()
            .map(|(r, c, s)| format!("{} ×{c}: {s}", r.key()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {total} | {} |",
            fp.tool.label(),
            fp.n,
            by.join(", ")
        );
    }
}
