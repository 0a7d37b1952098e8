//! Bulk normalization on a thread pool with a bounded queue.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{NormalizeError, Normalizer, Profile, Rendition};

/// One input of a batch: bytes already in memory, or a file the worker reads.
#[derive(Debug, Clone)]
pub enum Input {
    /// The image bytes.
    Bytes(bytes::Bytes),
    /// A file to read (its size is checked against the limits before it is read).
    Path(PathBuf),
}

/// How a batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOptions {
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// How many inputs may wait for a worker (the bound on memory held by queued inputs);
    /// 0 means twice the thread count.
    pub queue: usize,
}

/// Counts reported with every finished item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchProgress {
    /// Items finished so far, this one included.
    pub done: usize,
    /// Of those, items where the image or any profile failed.
    pub failed: usize,
}

/// One finished input.
#[derive(Debug)]
pub struct BatchItem<K> {
    /// The key given with the input.
    pub key: K,
    /// Its position in the input sequence.
    pub index: usize,
    /// The renditions, one per profile in order, or the error for the whole image.
    pub result: Result<Vec<Result<Rendition, NormalizeError>>, NormalizeError>,
    /// Time spent reading and normalizing it.
    pub elapsed: Duration,
}

impl<K> BatchItem<K> {
    /// Whether the image and every profile succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(&self.result, Ok(v) if v.iter().all(|r| r.is_ok()))
    }
}

impl Normalizer {
    /// Normalizes many inputs for several profiles on `options.threads` worker threads.
    ///
    /// Inputs are pulled lazily from the iterator into a bounded queue, so a million-file
    /// run holds only a few inputs in memory. `on_item` runs on the calling thread, once per
    /// input, in completion order, with the running counts (draw a progress bar there). The
    /// renditions do not depend on the thread count.
    ///
    /// This is CPU-bound and blocking: from async code, call it inside
    /// `tokio::task::spawn_blocking` (or a dedicated thread), never on the reactor.
    ///
    /// ```
    /// use userphoto::normalize::{BatchOptions, Input, Normalizer, Profile};
    /// # let jpeg = userphoto::normalize::testimage::gradient_jpeg(400, 300);
    /// let inputs = (0..4).map(|i| (format!("user{i}"), Input::Bytes(jpeg.clone().into())));
    /// let mut ok = 0;
    /// Normalizer::new().normalize_batch(inputs, &[Profile::ad_thumbnail()], BatchOptions::default(), |item, progress| {
    ///     ok += item.is_ok() as usize;
    ///     eprintln!("{}/{}", progress.done, 4);
    /// });
    /// assert_eq!(ok, 4);
    /// ```
    pub fn normalize_batch<K, I, F>(
        &self,
        inputs: I,
        profiles: &[Profile],
        options: BatchOptions,
        mut on_item: F,
    ) -> BatchProgress
    where
        K: Send,
        I: IntoIterator<Item = (K, Input)>,
        F: FnMut(BatchItem<K>, BatchProgress),
    {
        let threads = if options.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            options.threads
        };
        let queue = if options.queue == 0 {
            threads * 2
        } else {
            options.queue
        };
        let mut progress = BatchProgress::default();
        let (job_tx, job_rx) = mpsc::sync_channel::<(usize, K, Input)>(queue);
        let job_rx = std::sync::Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::sync_channel::<BatchItem<K>>(queue);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let done_tx = done_tx.clone();
                let job_rx = &job_rx;
                scope.spawn(move || loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((index, key, input)) = job else { return };
                    let start = Instant::now();
                    let result = self
                        .read_input(input)
                        .and_then(|b| self.normalize_many(&b, profiles));
                    let item = BatchItem {
                        key,
                        index,
                        result,
                        elapsed: start.elapsed(),
                    };
                    if done_tx.send(item).is_err() {
                        return;
                    }
                });
            }
            drop(done_tx);
            // Feed from this thread while draining results, so neither channel can fill up
            // and block the other side forever.
            let mut inputs = inputs.into_iter().enumerate();
            let mut pending = None;
            let mut job_tx = Some(job_tx);
            loop {
                if let Some(tx) = &job_tx {
                    let next = pending
                        .take()
                        .or_else(|| inputs.next().map(|(i, (k, inp))| (i, k, inp)));
                    match next {
                        Some(job) => match tx.try_send(job) {
                            Ok(()) => continue,
                            Err(mpsc::TrySendError::Full(job)) => pending = Some(job),
                            Err(mpsc::TrySendError::Disconnected(_)) => job_tx = None,
                        },
                        None => job_tx = None,
                    }
                }
                let item = if job_tx.is_some() {
                    match done_rx.recv_timeout(Duration::from_millis(2)) {
                        Ok(item) => item,
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                } else {
                    match done_rx.recv() {
                        Ok(item) => item,
                        Err(_) => break,
                    }
                };
                progress.done += 1;
                if !item.is_ok() {
                    progress.failed += 1;
                }
                on_item(item, progress);
            }
        });
        progress
    }

    fn read_input(&self, input: Input) -> Result<bytes::Bytes, NormalizeError> {
        match input {
            Input::Bytes(b) => Ok(b),
            Input::Path(p) => {
                let max = self.limits.max_input_bytes;
                match crate::bounded::read_file(&p, max)? {
                    crate::bounded::Bounded::Read(bytes) => Ok(bytes.into()),
                    // The size the file reported, or 0 (unknown: the read went past the
                    // limit, the file grew or is a FIFO).
                    crate::bounded::Bounded::TooLarge(size) => Err(NormalizeError::LimitExceeded {
                        what: "input bytes",
                        value: size.unwrap_or(0),
                        limit: max,
                    }),
                }
            }
        }
    }
}
