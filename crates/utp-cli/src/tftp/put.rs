//! `utp tftp put`: upload a file, or standard input, to a TFTP server.
//!
//! The file's size is announced with `tsize` when it is known (a regular file in octet
//! mode), so a server can refuse a file too large for it before anything is sent. Success
//! means the server acknowledged every block.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use utp_proto::wire::tftp::Mode;

use crate::Failure;
use crate::transfer::{self, Signals};

use super::{ClientFlags, ProgressView, ServerAddr, TftpSummary, failure};

/// Arguments of `utp tftp put`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server: HOST or HOST:PORT (port 69 when omitted), an IP address or a name.
    #[arg(value_name = "ADDR", value_parser = ServerAddr::parse)]
    addr: ServerAddr,

    /// The file to upload; `-` reads standard input (then REMOTE is required).
    #[arg(value_name = "LOCAL")]
    local: PathBuf,

    /// The name to store it under on the server. Default: LOCAL's file name.
    #[arg(value_name = "REMOTE")]
    remote: Option<String>,

    #[command(flatten)]
    flags: ClientFlags,
}

/// Where the bytes come from.
enum Input {
    Stdin,
    File { file: File, len: Option<u64> },
}

/// Uploads LOCAL and prints the summary.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let stdin = args.local.as_os_str() == "-";
    let remote = match &args.remote {
        Some(remote) => remote.clone(),
        None if stdin => {
            return Err(Failure::Usage(
                "reading standard input (`-`) needs REMOTE, the name to store it under: \
                 utp tftp put ADDR - REMOTE"
                    .into(),
            ));
        }
        None => remote_name(&args.local)?,
    };
    let input = if stdin { Input::Stdin } else { open(&args.local)? };
    let runtime = transfer::runtime()?;
    let (summary, server) = runtime.block_on(upload(args, &remote, input))?;
    let file = (!stdin).then(|| args.local.display().to_string());
    TftpSummary::new(&summary, server, file).print("sent", "to", args.flags.json, false)
}

async fn upload(
    args: &Args,
    remote: &str,
    input: Input,
) -> Result<(utp_tokio::tftp::Summary, SocketAddr), Failure> {
    let (source, len): (Box<dyn Read + Send>, _) = match input {
        Input::Stdin => (Box::new(io::stdin()), None),
        Input::File { file, len } => (Box::new(file), len),
    };
    let local = match args.local.as_os_str() {
        name if name == "-" => "read standard input".to_owned(),
        _ => format!("read {}", args.local.display()),
    };
    // netascii changes the size on the wire: announce only octet sizes.
    let tsize = len.filter(|_| args.flags.mode == Mode::Octet);
    let options = args.flags.options(tsize);
    let server = args.addr.resolve().await?;
    let mut signals = Signals::new()?;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let counter = acknowledged.clone();
    let mut view = ProgressView::default();
    let progress = move |p: utp_tokio::tftp::Progress| {
        counter.store(p.bytes, Ordering::Relaxed);
        view.update(p);
    };
    tokio::select! {
        result = utp_tokio::tftp::put(server, remote, source, &options, progress) => {
            result.map(|summary| (summary, server)).map_err(|e| failure(e, server, &local))
        }
        () = signals.wait() => Err(Failure::Runtime(format!(
            "interrupted after {} bytes were acknowledged; the upload is incomplete",
            acknowledged.load(Ordering::Relaxed)
        ))),
    }
}

/// LOCAL's file name, as the remote name.
fn remote_name(local: &Path) -> Result<String, Failure> {
    local.file_name().and_then(|n| n.to_str()).map(str::to_owned).ok_or_else(|| {
        Failure::Usage(format!("cannot take a remote name from `{}`: pass REMOTE", local.display()))
    })
}

/// Opens LOCAL, refusing a directory; its length when it is a regular file.
fn open(path: &Path) -> Result<Input, Failure> {
    let (file, meta) = transfer::open_input(path, "TFTP moves one file at a time")?;
    // A FIFO or a device has no meaningful length.
    let len = meta.is_file().then_some(meta.len());
    Ok(Input::File { file, len })
}
