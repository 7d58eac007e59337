//! The hypervisor virtual terminal behind `/vdevice/vty@30000000` (hvc0 in the guest):
//! guest output goes to a sink (stdout, a file, or nowhere); host input is queued by the
//! event loop and handed out by `H_GET_TERM_CHAR`.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// Bounds queued input so a fast writer on stdin cannot grow memory without limit.
const INPUT_MAX: usize = 64 << 10;

/// `--serial file=PATH` grows to this many bytes, then moves to `PATH.1` (replacing an older
/// one) and starts again: a guest printing without end uses at most twice this on disk.
pub const FILE_MAX: u64 = 64 << 20;

/// Where guest console output goes (`--serial`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialMode {
    /// The VMM's stdout; stdin is the guest's input.
    Tty,
    /// Append to a file (no input), rotated at [`FILE_MAX`] bytes.
    File(std::path::PathBuf),
    /// Discard.
    Off,
}

/// Partition by every vCPU thread (output, input) and the event loop (input).
pub struct Console {
    out: Mutex<Box<dyn Write + Send>>,
    input: Mutex<VecDeque<u8>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Console {
            out: Mutex::new(out),
            input: Mutex::new(VecDeque::new()),
        }
    }

    /// Opens the sink for `mode`.
    pub fn for_mode(mode: &SerialMode) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match mode {
            SerialMode::Tty => Box::new(std::io::stdout()),
            SerialMode::File(p) => Box::new(RotatingFile::open(p.clone(), FILE_MAX)?),
            SerialMode::Off => Box::new(std::io::sink()),
        };
        Ok(Console::new(out))
    }

    /// Guest output: written and flushed at once (a crashing guest's last words matter).
    pub fn write(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(bytes).and_then(|_| out.flush());
    }

    /// Host input for the guest; bytes beyond the queue limit are dropped.
    pub fn queue_input(&self, bytes: &[u8]) {
        let mut q = self.input.lock().unwrap_or_else(|e| e.into_inner());
        let room = INPUT_MAX.saturating_sub(q.len());
        q.extend(bytes.iter().take(room));
    }

    /// Takes up to `buf.len()` queued input bytes.
    pub fn read(&self, buf: &mut [u8]) -> usize {
        let mut q = self.input.lock().unwrap_or_else(|e| e.into_inner());
        let n = buf.len().min(q.len());
        for (d, s) in buf.iter_mut().zip(q.drain(..n)) {
            *d = s;
        }
        n
    }
}

/// A file appended to until it holds `max` bytes, then renamed to `PATH.1` and started anew.
struct RotatingFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    len: u64,
    max: u64,
}

impl RotatingFile {
    fn open(path: std::path::PathBuf, max: u64) -> std::io::Result<Self> {
        let file = Self::append(&path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            len,
            max,
        })
    }

    fn append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, &old)?;
        self.file = Self::append(&self.path)?;
        self.len = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.len > 0 && self.len.saturating_add(b.len() as u64) > self.max {
            if let Err(e) = self.rotate() {
                // Keep appending: losing the guest's last words is worse than a big file.
                log::warn!("serial file {}: cannot rotate: {e}", self.path.display());
                self.len = 0;
            }
        }
        let n = self.file.write(b)?;
        self.len = self.len.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Partition(Arc<Mutex<Vec<u8>>>);
    impl Write for Partition {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_reaches_the_sink_and_input_is_fifo_and_bounded() {
        let sink = Partition::default();
        let c = Console::new(Box::new(sink.clone()));
        c.write(b"hello ");
        c.write(b"world");
        assert_eq!(&*sink.0.lock().unwrap(), b"hello world");
        c.queue_input(b"abc");
        let mut b = [0u8; 2];
        assert_eq!(c.read(&mut b), 2);
        assert_eq!(&b, b"ab");
        assert_eq!(c.read(&mut b), 1);
        assert_eq!(b[0], b'c');
        c.queue_input(&vec![b'x'; INPUT_MAX + 10]);
        let mut big = vec![0u8; INPUT_MAX + 10];
        assert_eq!(c.read(&mut big), INPUT_MAX);
    }

    #[test]
    fn a_serial_file_rotates_at_its_limit_and_never_holds_more() {
        let dir = std::env::temp_dir().join(format!("ppc-vmm-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.log");
        let mut f = RotatingFile::open(path.clone(), 1000).unwrap();
        for i in 0..25u8 {
            f.write_all(&[b'a' + i; 100]).unwrap();
        }
        let cur = std::fs::read(&path).unwrap();
        let old = std::fs::read(dir.join("console.log.1")).unwrap();
        assert!(cur.len() <= 1000 && old.len() <= 1000);
        // The newest output is in the file, the 10 writes before it in .1.
        assert_eq!(cur.len(), 500);
        assert_eq!(cur[499], b'a' + 24);
        assert_eq!(
            old,
            (10..20u8).flat_map(|i| [b'a' + i; 100]).collect::<Vec<_>>()
        );
        // Reopened, it counts what is there.
        drop(f);
        let f = RotatingFile::open(path.clone(), 1000).unwrap();
        assert_eq!(f.len, 500);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
