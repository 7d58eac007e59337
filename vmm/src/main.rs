//! `ppc-vmm`: see `ppc-vmm --help`.

use std::io::Write;
use std::process::ExitCode;
use vmm::cli::{self, Command};

/// Minimal stderr logger (timestamps relative to start, thread name).
struct StderrLogger {
    start: std::time::Instant,
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let t = self.start.elapsed();
            let th = std::thread::current();
            let _ = writeln!(
                std::io::stderr(),
                "[{:>4}.{:03} {:5} {}] {}",
                t.as_secs(),
                t.subsec_millis(),
                r.level(),
                th.name().unwrap_or("?"),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ppc-vmm: {e}");
            return ExitCode::from(2);
        }
    };
    let (config, level, api_socket, event_monitor) = match cmd {
        Command::Help => {
            print!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("ppc-vmm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run {
            config,
            log_level,
            api_socket,
            event_monitor,
        } => (config, log_level, api_socket, event_monitor),
    };
    for (flag, path) in std::iter::once(("--kernel", &config.kernel))
        .chain(config.initramfs.iter().map(|p| ("--initramfs", p)))
    {
        if let Err(e) = std::fs::File::open(path) {
            eprintln!("ppc-vmm: {flag} {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let logger = Box::leak(Box::new(StderrLogger {
        start: std::time::Instant::now(),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    // The API server starts before the machine's threads: a socket that cannot be served is
    // a bad command line, reported before any guest memory is set up.
    if let Some(path) = &event_monitor {
        if let Err(e) = vmm::event_monitor::set_monitor(path) {
            eprintln!("ppc-vmm: --event-monitor {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let mut api = None;
    let mut queue = None;
    if let Some(path) = &api_socket {
        let started = vmm::api::machine_channel(8)
            .map_err(|e| e.to_string())
            .and_then(|(link, q)| {
                vmm::api::ApiServer::start(path, link, vmm::api::ServerConfig::default())
                    .map(|s| (s, q))
                    .map_err(|e| e.to_string())
            });
        match started {
            Ok((s, q)) => {
                api = Some(s);
                queue = Some(q);
            }
            Err(e) => {
                eprintln!("ppc-vmm: --api-socket {e}");
                return ExitCode::from(2);
            }
        }
    }
    let result = vmm::machine::Machine::new(config).and_then(|mut m| {
        if let Some(q) = queue {
            m.attach_api(q);
        }
        m.run()
    });
    if let Some(mut s) = api {
        // Let a vm.shutdown's answer reach its client before the process ends.
        s.stop(std::time::Duration::from_secs(2));
    }
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("ppc-vmm: {e}");
            ExitCode::FAILURE
        }
    }
}
