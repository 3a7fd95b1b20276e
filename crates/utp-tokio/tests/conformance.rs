//! The driver's conformance suite on tokio's multi-thread runtime with two workers.

fn block_on<F: Future>(future: F) -> F::Output {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    runtime.expect("building a tokio runtime").block_on(future)
}

utp_driver::conformance_tests!(block_on, utp_tokio::TokioRuntime);
