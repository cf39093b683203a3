//! Bounded concurrency for warming's requests.

use futures_util::StreamExt as _;

/// Runs `work` for every job, at most `concurrency` at once, handing each result to `settle` as
/// it ends. (A `FuturesUnordered` fed by hand, with named async fns: a stream of closures returning
/// async blocks over borrowed state is a future the compiler cannot prove `Send` for, and
/// scheduled warming runs this on a spawned task.)
pub(super) async fn bounded<J, F, Fut>(
    jobs: Vec<J>,
    concurrency: usize,
    work: F,
    mut settle: impl FnMut(Fut::Output),
) where
    F: Fn(J) -> Fut,
    Fut: Future,
{
    let mut queue = jobs.into_iter();
    let mut running = futures_util::stream::FuturesUnordered::new();
    running.extend(queue.by_ref().take(concurrency.max(1)).map(&work));
    while let Some(result) = running.next().await {
        settle(result);
        if let Some(job) = queue.next() {
            running.push(work(job));
        }
    }
}
