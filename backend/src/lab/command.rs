//! The lab's command-line front: `sendense lab init` and `sendense lab
//! activity`. Parsing and printing only; the work is in [`super::init`] and
//! [`super::activity`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::{activity, human, init, InitOptions, InitOutcome, LabError, LabManifest};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start the lab on real libvirt hosts in DIR: `lab init` first when DIR
    /// holds no lab, then the production and DR hosts, their networks and
    /// pools, and the lab's guests booting (about a minute the first time).
    /// Needs root, libvirt and the guest kit (scripts/run.sh installs them).
    Start {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop the lab's libvirt hosts (guests, networks, daemons).
    Stop {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The lab's libvirt hosts and guests, with their real power state.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Start, stop or show the lab's two libvirt hosts (production and DR,
    /// each its own libvirtd reached by a socket URI) under DIR/libvirt.
    /// Needs root and libvirt (scripts/run.sh installs it).
    Hosts {
        #[arg(value_enum)]
        action: HostsAction,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Create the demo lab in DIR (new or empty): a production KVM host with
    /// six VMs on real qcow2 disks, and an empty DR host.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Rebuild the lab already in DIR (its hosts and lab.json are replaced).
        #[arg(long)]
        force: bool,
    },
    /// Make the running VMs of the lab in DIR write: on the libvirt lab
    /// (`lab start`) each guest does a round of its role's work through its
    /// own filesystem and reports each file it wrote with its SHA-256;
    /// otherwise guest-like writes go into the lab's disk images.
    Activity {
        #[arg(long)]
        dir: PathBuf,
        /// Print each round's report as one JSON line.
        #[arg(long)]
        json: bool,
        /// Rounds to run; 0 runs until interrupted.
        #[arg(long, default_value_t = 1)]
        rounds: u64,
        /// Pause between rounds.
        #[arg(long, default_value_t = 60)]
        interval_seconds: u64,
    },
}

/// What `lab hosts` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HostsAction {
    Start,
    Stop,
    Status,
}

pub fn run(cmd: LabCommand) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Start { dir } => {
            if let Some(why) = crate::lab::libvirt_lab::unavailable() {
                anyhow::bail!("{why}");
            }
            if !dir.join(crate::lab::manifest::LAB_FILE).exists() {
                init(&dir, &InitOptions { force: false }, &mut |line| println!("  {line}"))?;
            }
            let lab = crate::lab::libvirt_lab::init(&dir, &mut |line| println!("  {line}"))?;
            for (name, uri) in &lab.uris {
                println!("{name}: {uri}");
            }
            for (name, why) in &lab.off {
                println!("{name}: shut off ({why})");
            }
            println!("{} guests up in {:.1} s", lab.booted.len(), lab.seconds);
            Ok(())
        }
        LabCommand::Stop { dir } => {
            crate::lab::libvirt_lab::stop(&dir)?;
            println!("the lab's libvirt hosts are stopped");
            Ok(())
        }
        LabCommand::Status { dir } => {
            use crate::platforms::Platform;
            for host in crate::lab::libvirt_lab::hosts(&dir) {
                let Some(pid) = host.pid() else {
                    println!("{}: stopped", host.name);
                    continue;
                };
                println!("{}: running (pid {pid}) at {}", host.name, host.uri());
                let inv = crate::platforms::libvirt::LibvirtPlatform::new(&host.uri()).inventory()?;
                for vm in inv.vms {
                    println!("  {:<10} {:<9} {} vCPU, {} MiB, {} disk(s)", vm.name, format!("{:?}", vm.power).to_lowercase(), vm.vcpus, vm.memory_mib, vm.disks.len());
                }
            }
            Ok(())
        }
        LabCommand::Hosts { action, dir } => {
            for host in crate::lab::libvirt_lab::hosts(&dir) {
                match action {
                    HostsAction::Start => {
                        host.start()?;
                        println!("{}: running (pid {}), add it as a KVM platform with address {}", host.name, host.pid().unwrap_or(0), host.uri());
                    }
                    HostsAction::Stop => {
                        host.stop()?;
                        println!("{}: stopped (its guests and networks too)", host.name);
                    }
                    HostsAction::Status => match host.pid() {
                        Some(pid) => println!("{}: running (pid {pid}) at {}", host.name, host.uri()),
                        None => println!("{}: stopped", host.name),
                    },
                }
            }
            Ok(())
        }
        LabCommand::Init { dir, force } => {
            let started = Instant::now();
            let outcome = init(&dir, &InitOptions { force }, &mut |line| println!("  {line}"))?;
            match outcome {
                InitOutcome::Exists(m) => {
                    println!("{} already holds a lab (made {} by Sendense {}): nothing to do; --force rebuilds it", dir.display(), m.created_at.format("%Y-%m-%d %H:%M UTC"), m.sendense_version);
                }
                InitOutcome::Created(m) => {
                    print_summary(&m);
                    println!("Lab ready in {:.1} s: {} of files, {} on disk", started.elapsed().as_secs_f64(), human(m.content_bytes), human(m.allocated_bytes));
                }
            }
            Ok(())
        }
        LabCommand::Activity { dir, json, rounds, interval_seconds } => {
            if interval_seconds == 0 && rounds != 1 {
                return Err(LabError::Invalid("--interval-seconds must be at least 1 when running more than one round".into()).into());
            }
            let on_guests = crate::lab::guest_activity::running(&dir);
            let mut n = 0;
            loop {
                n += 1;
                if on_guests {
                    let report = crate::lab::guest_activity::round(&dir)?;
                    if json {
                        println!("{}", serde_json::to_string(&report)?);
                    } else {
                        print_guest_report(n, &report);
                    }
                } else {
                    let report = activity::round(&dir)?;
                    if json {
                        println!("{}", serde_json::to_string(&report)?);
                    } else {
                        print_report(n, &report);
                    }
                }
                if rounds != 0 && n >= rounds {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_secs(interval_seconds));
            }
        }
    }
}

fn print_summary(m: &LabManifest) {
    for host in &m.hosts {
        println!("{} ({}, {})", host.name, host.role, host.dir);
        for vm in &host.vms {
            for disk in &vm.disks {
                let parts: Vec<String> = disk
                    .partitions
                    .iter()
                    .map(|p| format!("p{} {} {}", p.number, p.filesystem.map(|f| format!("{f:?}").to_lowercase()).unwrap_or_else(|| "-".into()), p.mount.as_deref().unwrap_or("")))
                    .collect();
                println!(
                    "  {:<9} {:<12} {}  {:>9} virtual  {:>9} allocated  {:?}: {}",
                    vm.name,
                    vm.role,
                    disk.name,
                    human(disk.virtual_size),
                    human(disk.allocated_bytes),
                    disk.table,
                    parts.join(", ")
                );
            }
        }
    }
}

fn print_guest_report(n: u64, r: &crate::lab::guest_activity::GuestActivityReport) {
    println!("Round {n} ({}): the guests wrote {} in {:.1} s", r.started_at.format("%H:%M:%S"), human(r.bytes_written), r.seconds);
    for g in &r.guests {
        if let Some(why) = &g.skipped {
            println!("  {:<9} skipped ({why})", g.vm);
            continue;
        }
        for f in &g.files {
            println!("  {:<9} {} {} written, now {} sha256 {}", g.vm, f.path, human(f.bytes_written), human(f.size), f.sha256);
        }
    }
}

fn print_report(n: u64, r: &activity::ActivityReport) {
    println!("Round {n} ({}): {} written in {:.1} s", r.started_at.format("%H:%M:%S"), human(r.bytes_written), r.seconds);
    for vm in &r.vms {
        if let Some(why) = &vm.skipped {
            println!("  {:<9} skipped ({why})", vm.vm);
            continue;
        }
        for d in &vm.disks {
            println!("  {:<9} {}  {:>9} in {} block(s) of 64 KiB, {} file change(s)", vm.vm, d.disk, human(d.bytes_written), d.blocks_written, d.changes.len());
            for c in &d.changes {
                println!("      p{} {:<9} {} ({})", c.partition, format!("{:?}", c.kind).to_lowercase(), c.path, human(c.bytes));
            }
        }
    }
}
