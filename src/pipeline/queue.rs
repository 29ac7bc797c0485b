//! One pipeline shared between threads. Generations run one at a time, in the order they
//! were asked for, each with its own cancellation: blocking ones on the caller's thread, jobs
//! on the pipeline's own thread so that a game loop can poll them instead of waiting.
//!
//! What never changes after the load (default size, sampler, settings) is copied out, so
//! reading it never waits for a generation. A call that would wait for work its own thread
//! is doing (from inside a callback) fails with [`Error::Busy`] instead of deadlocking.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CancelHandle, GenerateParams, Pipeline, StepProgress};
use crate::error::{panic_message, Error, Result};
use crate::image::Image;
use crate::model::RecommendedSettings;
use crate::scheduler::SchedulerKind;

/// Where a job is in its life. The last three are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum JobState {
    /// Waiting for the generations asked for before it.
    Queued = 0,
    /// Generating.
    Running = 1,
    /// Ended with its images.
    Done = 2,
    /// Ended with an error.
    Failed = 3,
    /// Cancelled, queued or running.
    Cancelled = 4,
}

impl JobState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => JobState::Queued,
            1 => JobState::Running,
            2 => JobState::Done,
            3 => JobState::Failed,
            _ => JobState::Cancelled,
        }
    }

    /// Whether the job has ended (done, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// A snapshot of a job, read without waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobProgress {
    /// Where the job is.
    pub state: JobState,
    /// Denoising steps done, and how many there will be (0 until the first step).
    pub step: u32,
    /// UNet evaluations in all.
    pub total_steps: u32,
    /// The step of the newest preview ([`Job::preview`]), 0 while there is none.
    pub preview_step: u32,
}

/// A pipeline that several threads use at once (see the module documentation). Dropping it
/// cancels what is queued or running and waits for the running generation to stop.
pub struct SharedPipeline {
    shared: Arc<Shared>,
}

/// A generation submitted with [`SharedPipeline::submit`]. Dropping it cancels it and waits
/// until it has stopped.
pub struct Job {
    work: Arc<Work>,
    shared: Weak<Shared>,
}

pub(crate) struct Shared {
    pipeline: Mutex<Pipeline>,
    /// Stops the graph call in progress without taking the pipeline's lock.
    interrupt: CancelHandle,
    default_size: (u32, u32),
    default_scheduler: Result<SchedulerKind>,
    recommended: RecommendedSettings,
    /// A trim asked for while a generation ran: done when it ends.
    trim_pending: AtomicBool,
    queue: Mutex<Queue>,
    /// Signalled whenever the queue changes: the head of the line checks whether it is its turn.
    turn: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Work>>,
    running: Option<Arc<Work>>,
    /// Set by [`Shared::close`]: nothing new is queued, the job thread ends.
    closed: bool,
    job_thread: Option<JoinHandle<()>>,
}

/// One generation, blocking or a job.
struct Work {
    /// A job's parameters until its thread takes them; `None` for a blocking generation.
    params: Mutex<Option<GenerateParams>>,
    is_job: bool,
    cancelled: AtomicBool,
    state: AtomicU8,
    step: AtomicU32,
    total_steps: AtomicU32,
    preview_step: AtomicU32,
    previews: Mutex<Vec<Image>>,
    outcome: Mutex<Outcome>,
    ended: Condvar,
}

enum Outcome {
    Pending,
    Ready(Result<Vec<Image>>),
    Taken,
}

thread_local! {
    /// The pipelines whose generation this thread is running (several when a callback of one
    /// uses another): calls that would wait for them from here fail instead of deadlocking.
    static RUNNING_HERE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as running a generation of one pipeline, until dropped.
struct RunningHere(usize);

impl RunningHere {
    fn enter(key: usize) -> Self {
        RUNNING_HERE.with(|running| running.borrow_mut().push(key));
        RunningHere(key)
    }
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        RUNNING_HERE.with(|running| {
            let mut running = running.borrow_mut();
            if let Some(i) = running.iter().rposition(|&k| k == self.0) {
                running.remove(i);
            }
        });
    }
}

/// The running generation's turn: dropping it lets the next one in line run.
struct Turn<'a>(&'a Shared);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic caught at the C boundary may have poisoned a lock; the state behind each of
    // these stays consistent between statements, so keep going.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SharedPipeline {
    /// Shares `pipeline`; its job thread starts at the first [`SharedPipeline::submit`].
    pub fn new(pipeline: Pipeline) -> Self {
        let shared = Shared {
            interrupt: pipeline.cancel_handle(),
            default_size: pipeline.default_size(),
            default_scheduler: pipeline.default_scheduler(),
            recommended: pipeline.info().recommended_settings(),
            pipeline: Mutex::new(pipeline),
            trim_pending: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            turn: Condvar::new(),
        };
        SharedPipeline { shared: Arc::new(shared) }
    }

    /// A reference that keeps the pipeline's state alive on its own (the C handle's calls
    /// hold one, so that freeing the handle from inside a callback cannot free what the call
    /// is using).
    pub(crate) fn handle(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// [`Pipeline::default_size`], without waiting.
    pub fn default_size(&self) -> (u32, u32) {
        self.shared.default_size
    }

    /// [`Pipeline::default_scheduler`], without waiting.
    pub fn default_scheduler(&self) -> Result<SchedulerKind> {
        self.shared.default_scheduler()
    }

    /// The model family's steps and guidance, without waiting.
    pub fn recommended_settings(&self) -> RecommendedSettings {
        self.shared.recommended
    }

    /// Generates on this thread once the generations asked for earlier have run.
    pub fn generate_batch(
        &self,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<Vec<Image>> {
        self.shared.generate_batch(params, progress)
    }

    /// Queues a generation for the pipeline's own thread and returns at once.
    pub fn submit(&self, params: GenerateParams) -> Result<Job> {
        self.shared.submit(params)
    }

    /// Releases the graphs that can be loaded again ([`Pipeline::trim`]), now or when the
    /// running generation ends; never waits.
    pub fn trim(&self) {
        self.shared.trim();
    }

    /// Cancels every generation queued or running now (later ones are not affected).
    pub fn cancel_all(&self) {
        self.shared.cancel_all();
    }
}

impl Drop for SharedPipeline {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    pub(crate) fn default_size(&self) -> (u32, u32) {
        self.default_size
    }

    pub(crate) fn default_scheduler(&self) -> Result<SchedulerKind> {
        self.default_scheduler.as_ref().map(|&kind| kind).map_err(|e| Error::UnsupportedModel(e.to_string()))
    }

    pub(crate) fn recommended_settings(&self) -> RecommendedSettings {
        self.recommended
    }

    fn key(&self) -> usize {
        self as *const Shared as usize
    }

    /// Whether this thread is running one of this pipeline's generations right now.
    fn runs_here(&self) -> bool {
        RUNNING_HERE.with(|running| running.borrow().contains(&self.key()))
    }

    pub(crate) fn generate_batch(
        self: &Arc<Self>,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<Vec<Image>> {
        if self.runs_here() {
            return Err(Error::Busy(
                "a generation on this pipeline was started from inside its own callback; it would wait for itself"
                    .into(),
            ));
        }
        let work = Arc::new(Work::new(None));
        self.wait_turn(&work)?;
        // The turn passes on even if the generation panics (the C boundary catches that).
        let _turn = Turn(self);
        self.run(&work, params, progress)
    }

    pub(crate) fn submit(self: &Arc<Self>, params: GenerateParams) -> Result<Job> {
        let work = Arc::new(Work::new(Some(params)));
        let mut queue = locked(&self.queue);
        if queue.closed {
            return Err(Error::Busy("the pipeline is being freed".into()));
        }
        if queue.job_thread.is_none() {
            let shared = self.clone();
            let thread = std::thread::Builder::new()
                .name("sdrt-pipeline".into())
                .spawn(move || shared.run_jobs())
                .map_err(|e| Error::io("<the pipeline's job thread>", e))?;
            queue.job_thread = Some(thread);
        }
        queue.waiting.push_back(work.clone());
        drop(queue);
        self.turn.notify_all();
        Ok(Job { work, shared: Arc::downgrade(self) })
    }

    /// Waits in line until `work` may run; fails when it is cancelled or the pipeline closes.
    fn wait_turn(&self, work: &Arc<Work>) -> Result<()> {
        let mut queue = locked(&self.queue);
        if queue.closed {
            return Err(Error::Cancelled);
        }
        queue.waiting.push_back(work.clone());
        loop {
            if work.cancelled.load(Ordering::SeqCst) || queue.closed {
                queue.waiting.retain(|w| !Arc::ptr_eq(w, work));
                drop(queue);
                self.turn.notify_all();
                return Err(Error::Cancelled);
            }
            if queue.running.is_none() && queue.waiting.front().is_some_and(|w| Arc::ptr_eq(w, work)) {
                queue.waiting.pop_front();
                queue.running = Some(work.clone());
                work.set_state(JobState::Running);
                return Ok(());
            }
            queue = self.turn.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// The job thread: runs submitted jobs in their turn until the pipeline closes.
    fn run_jobs(self: Arc<Self>) {
        loop {
            let work = {
                let mut queue = locked(&self.queue);
                loop {
                    if queue.closed {
                        return;
                    }
                    let next_is_job = queue.waiting.front().is_some_and(|w| w.is_job);
                    if queue.running.is_none() && next_is_job {
                        let work = queue.waiting.pop_front().expect("checked above");
                        queue.running = Some(work.clone());
                        work.set_state(JobState::Running);
                        break work;
                    }
                    queue = self.turn.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            };
            let params = locked(&work.params).take().unwrap_or_default();
            let run =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(&work, &params, &mut |_| true)));
            let result = run.unwrap_or_else(|panic| Err(Error::Internal(panic_message(panic.as_ref()))));
            // Nobody may be polling: a job's failure goes to the log too (a cancel is no failure).
            match &result {
                Err(Error::Cancelled) | Ok(_) => {}
                Err(e) => crate::log::warn(&format!("a submitted generation failed: {e}")),
            }
            work.end(result);
            self.release();
        }
    }

    /// Runs `work`, whose turn it is, on this thread.
    fn run(
        &self,
        work: &Work,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<Vec<Image>> {
        if work.cancelled.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        let _running_here = RunningHere::enter(self.key());
        let mut pipeline = locked(&self.pipeline);
        let result = pipeline.generate_batch(params, &mut |step| {
            work.step.store(step.step as u32, Ordering::SeqCst);
            work.total_steps.store(step.total_steps as u32, Ordering::SeqCst);
            if work.is_job && !step.previews.is_empty() {
                *locked(&work.previews) = step.previews.to_vec();
                work.preview_step.store(step.step as u32, Ordering::SeqCst);
            }
            // The job's own flag: a cancel that came before the pipeline's interrupt was reset
            // for this generation still ends it here, after at most one UNet evaluation.
            !work.cancelled.load(Ordering::SeqCst) && progress(step)
        });
        if self.trim_pending.swap(false, Ordering::SeqCst) {
            pipeline.trim();
        }
        drop(pipeline);
        result
    }

    /// Lets the next generation in line run.
    fn release(&self) {
        locked(&self.queue).running = None;
        self.turn.notify_all();
    }

    /// Releases the graphs that can be loaded again: now, or when the running generation ends.
    pub(crate) fn trim(&self) {
        match self.pipeline.try_lock() {
            Ok(mut pipeline) => pipeline.trim(),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().trim(),
            Err(std::sync::TryLockError::WouldBlock) => {
                self.trim_pending.store(true, Ordering::SeqCst);
                // The generation may have ended between the two: try once more.
                if let Ok(mut pipeline) = self.pipeline.try_lock() {
                    if self.trim_pending.swap(false, Ordering::SeqCst) {
                        pipeline.trim();
                    }
                }
            }
        }
    }

    fn cancel(&self, work: &Arc<Work>) {
        work.cancelled.store(true, Ordering::SeqCst);
        let mut queue = locked(&self.queue);
        if let Some(i) = queue.waiting.iter().position(|w| Arc::ptr_eq(w, work)) {
            queue.waiting.remove(i);
            drop(queue);
            work.end(Err(Error::Cancelled));
            self.turn.notify_all();
        } else if queue.running.as_ref().is_some_and(|w| Arc::ptr_eq(w, work)) {
            // Under the queue's lock, so the interrupt cannot reach the next generation.
            self.interrupt.cancel();
        }
    }

    pub(crate) fn cancel_all(&self) {
        let mut queue = locked(&self.queue);
        let waiting: Vec<_> = queue.waiting.drain(..).collect();
        if let Some(running) = &queue.running {
            running.cancelled.store(true, Ordering::SeqCst);
            self.interrupt.cancel();
        }
        drop(queue);
        for work in waiting {
            work.cancelled.store(true, Ordering::SeqCst);
            work.end(Err(Error::Cancelled));
        }
        self.turn.notify_all();
    }

    /// Cancels everything, stops the job thread and waits for the running generation to end
    /// (unless this thread is running it: a callback freeing its own pipeline).
    fn close(&self) {
        locked(&self.queue).closed = true;
        self.cancel_all();
        let job_thread = {
            let mut queue = locked(&self.queue);
            if !self.runs_here() {
                while queue.running.is_some() {
                    queue = self.turn.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
            queue.job_thread.take()
        };
        if let Some(thread) = job_thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Work {
    fn new(params: Option<GenerateParams>) -> Self {
        Work {
            is_job: params.is_some(),
            params: Mutex::new(params),
            cancelled: AtomicBool::new(false),
            state: AtomicU8::new(JobState::Queued as u8),
            step: AtomicU32::new(0),
            total_steps: AtomicU32::new(0),
            preview_step: AtomicU32::new(0),
            previews: Mutex::new(Vec::new()),
            outcome: Mutex::new(Outcome::Pending),
            ended: Condvar::new(),
        }
    }

    fn set_state(&self, state: JobState) {
        self.state.store(state as u8, Ordering::SeqCst);
    }

    fn state(&self) -> JobState {
        JobState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Stores the outcome (once) and wakes whoever waits for it.
    fn end(&self, result: Result<Vec<Image>>) {
        let mut outcome = locked(&self.outcome);
        if !matches!(*outcome, Outcome::Pending) {
            return;
        }
        self.set_state(match &result {
            Ok(_) => JobState::Done,
            Err(Error::Cancelled) => JobState::Cancelled,
            Err(_) => JobState::Failed,
        });
        *outcome = Outcome::Ready(result);
        self.ended.notify_all();
    }
}

impl Job {
    /// Where the job is, without waiting (a few atomic reads).
    pub fn poll(&self) -> JobProgress {
        let work = &self.work;
        JobProgress {
            state: work.state(),
            step: work.step.load(Ordering::SeqCst),
            total_steps: work.total_steps.load(Ordering::SeqCst),
            preview_step: work.preview_step.load(Ordering::SeqCst),
        }
    }

    /// Waits until the job has ended, at most `timeout` (`None`: as long as it takes).
    /// Returns whether it has ended. Waiting from inside a callback of the generation that
    /// would have to finish first is [`Error::Busy`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.work.state().is_final() {
            return Ok(true);
        }
        if self.shared.upgrade().is_some_and(|shared| shared.runs_here()) {
            return Err(Error::Busy(
                "waiting for a job from inside a callback of the same pipeline would wait forever".into(),
            ));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut outcome = locked(&self.work.outcome);
        while matches!(*outcome, Outcome::Pending) {
            outcome = match deadline {
                None => self.work.ended.wait(outcome).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    self.work.ended.wait_timeout(outcome, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0
                }
            };
        }
        Ok(true)
    }

    /// Cancels the job, queued or running; never waits. A queued job ends at once, a running
    /// one within one UNet evaluation.
    pub fn cancel(&self) {
        match self.shared.upgrade() {
            Some(shared) => shared.cancel(&self.work),
            // The pipeline is gone, and closing it ended every job.
            None => self.work.cancelled.store(true, Ordering::SeqCst),
        }
    }

    /// The job's outcome, handed over once: its images, [`Error::Cancelled`] or its error.
    /// Before the job has ended: [`Error::Busy`]. A job with more than `capacity` images
    /// keeps them and returns [`Error::InvalidArgument`].
    pub fn take_images(&self, capacity: usize) -> Result<Vec<Image>> {
        let mut outcome = locked(&self.work.outcome);
        match &*outcome {
            Outcome::Pending => Err(Error::Busy("the job has not ended yet: poll or wait for it first".into())),
            Outcome::Taken => Err(Error::InvalidArgument("the job's outcome was already taken".into())),
            Outcome::Ready(Ok(images)) if images.len() > capacity => Err(Error::InvalidArgument(format!(
                "the job made {} images; the output holds {capacity}",
                images.len()
            ))),
            Outcome::Ready(_) => match std::mem::replace(&mut *outcome, Outcome::Taken) {
                Outcome::Ready(result) => result,
                _ => unreachable!("matched above"),
            },
        }
    }

    /// The newest preview of batch image `index` (see [`GenerateParams::preview`]).
    pub fn preview(&self, index: usize) -> Option<Image> {
        locked(&self.work.previews).get(index).cloned()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.work.state().is_final() {
            return;
        }
        self.cancel();
        // From inside a callback of this pipeline the job cannot end while we wait: let it
        // end on its own (it is cancelled; nothing is called back for it any more).
        let _ = self.wait(None);
    }
}

// Handles cross threads: the C ABI hands them to any caller.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SharedPipeline>();
    assert_send_sync::<Job>();
};
