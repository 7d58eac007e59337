//! The hypervisor virtual terminal behind `/vdevice/vty@30000000` (hvc0 in the guest):
//! guest output goes to a sink (stdout, a file, or nowhere); host input is queued by the
//! event loop and handed out by `H_GET_TERM_CHAR`.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// Bounds queued input so a fast writer on stdin cannot grow memory without limit.
const INPUT_MAX: usize = 64 << 10;

/// Where guest console output goes (`--serial`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialMode {
    /// The VMM's stdout; stdin is the guest's input.
    Tty,
    /// Append to a file (no input).
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
            SerialMode::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
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
}
