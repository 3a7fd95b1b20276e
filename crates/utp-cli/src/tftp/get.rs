//! `utp tftp get`: download a file from a TFTP server.
//!
//! Into a file, the data goes to a temporary file next to it (`.NAME.utp-tftp-PID-N.part`),
//! renamed over it only once the transfer is complete: a failed or interrupted get never
//! leaves a truncated file, and an existing file is replaced only by a complete one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Failure;
use crate::transfer::{self, Signals};

use super::{ClientFlags, ProgressView, ServerAddr, TftpSummary, failure};

/// Arguments of `utp tftp get`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server: HOST or HOST:PORT (port 69 when omitted), an IP address or a name.
    #[arg(value_name = "ADDR", value_parser = ServerAddr::parse)]
    addr: ServerAddr,

    /// The file to read on the server.
    #[arg(value_name = "REMOTE")]
    remote: String,

    /// Where to write it: a file (replaced once the download is complete), a directory
    /// (the file goes in it under the remote name's last component), or `-` for standard
    /// output. Default: the remote name's last component, in the current directory.
    #[arg(long, short, value_name = "LOCAL")]
    output: Option<PathBuf>,

    #[command(flatten)]
    flags: ClientFlags,
}

/// Downloads REMOTE, then moves it into place and prints the summary.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let target = Target::choose(args)?;
    let (sink, partial): (Box<dyn Write + Send>, _) = match &target {
        Target::Stdout => (Box::new(io::stdout()), None),
        Target::File(path) => {
            let (partial, file) = Partial::create(path)?;
            (Box::new(file), Some(partial))
        }
    };
    let described = match &target {
        Target::Stdout => "standard output".to_owned(),
        Target::File(path) => path.display().to_string(),
    };
    let runtime = transfer::runtime()?;
    let (summary, server) = runtime.block_on(download(args, sink, &described))?;
    let file = match (partial, &target) {
        (Some(partial), Target::File(path)) => {
            partial.commit()?;
            Some(path.display().to_string())
        }
        _ => None,
    };
    let summary = TftpSummary::new(&summary, server, file);
    summary.print("received", "from", args.flags.json, matches!(target, Target::Stdout))
}

async fn download(
    args: &Args,
    sink: Box<dyn Write + Send>,
    described: &str,
) -> Result<(utp_tokio::tftp::Summary, std::net::SocketAddr), Failure> {
    let server = args.addr.resolve().await?;
    let mut signals = Signals::new()?;
    let options = args.flags.options(Some(0));
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let mut view = ProgressView::default();
    let progress = move |p: utp_tokio::tftp::Progress| {
        counter.store(p.bytes, Ordering::Relaxed);
        view.update(p);
    };
    tokio::select! {
        result = utp_tokio::tftp::get(server, &args.remote, sink, &options, progress) => {
            let local = format!("write {described}");
            result.map(|summary| (summary, server)).map_err(|e| failure(e, server, &local))
        }
        () = signals.wait() => Err(Failure::Runtime(format!(
            "interrupted after receiving {} bytes; {}",
            received.load(Ordering::Relaxed),
            if args.output.as_deref().is_some_and(|p| p.as_os_str() == "-") {
                "the output is incomplete"
            } else {
                "nothing was written"
            }
        ))),
    }
}

/// Where the download goes.
#[derive(Debug)]
enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    fn choose(args: &Args) -> Result<Self, Failure> {
        match args.output.as_deref() {
            Some(path) if path.as_os_str() == "-" => Ok(Self::Stdout),
            Some(path) if path.is_dir() => Ok(Self::File(path.join(local_name(&args.remote)?))),
            Some(path) => Ok(Self::File(path.to_owned())),
            None => Ok(Self::File(PathBuf::from(local_name(&args.remote)?))),
        }
    }
}

/// The last component of the remote name, to name the local file after.
fn local_name(remote: &str) -> Result<&str, Failure> {
    match remote.rsplit(['/', '\\']).next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(name),
        _ => Err(Failure::Usage(format!(
            "cannot name the local file after `{remote}`: pass --output LOCAL"
        ))),
    }
}

/// The temporary file a download is written to; removed when dropped unless committed.
#[derive(Debug)]
struct Partial {
    path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Partial {
    /// Creates a fresh temporary file in `target`'s directory (so the final rename stays on
    /// one file system).
    fn create(target: &Path) -> Result<(Self, File), Failure> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = target.file_name().map_or_else(|| "download".into(), |n| n.to_string_lossy());
        let mut last = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{name}.utp-tftp-{}-{n}.part", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let partial = Self { path, target: target.to_owned(), committed: false };
                    return Ok((partial, file));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("no name tried"));
        Err(Failure::Runtime(format!(
            "cannot create a temporary file in {} for {}: {e}; check the directory and its \
             permissions",
            dir.display(),
            target.display()
        )))
    }

    /// Moves the complete download into place.
    fn commit(mut self) -> Result<(), Failure> {
        fs::rename(&self.path, &self.target).map_err(|e| {
            Failure::Runtime(format!(
                "the download is complete but cannot be moved to {}: {e}",
                self.target.display()
            ))
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_come_from_the_last_component() {
        assert_eq!(local_name("boot/pxelinux.0").ok(), Some("pxelinux.0"));
        assert_eq!(local_name("/x.bin").ok(), Some("x.bin"));
        assert_eq!(local_name("dir\\file").ok(), Some("file"));
        for bad in ["dir/", "..", "a/.", ""] {
            assert!(local_name(bad).is_err(), "{bad}");
        }
    }
}
