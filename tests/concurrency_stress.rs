//! Several threads on several pipelines at once, blocking generations and jobs mixed, with
//! cancels at pseudo-random moments: every generation that is not cancelled gives exactly the
//! image it gives alone, every cancelled one ends as cancelled, and the whole run is bounded
//! in time (a deadlock fails the test instead of hanging it).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{load_options, tiny_model};
use sdrt::{Error, GenerateParams, Pipeline, SharedPipeline};

const THREADS: usize = 4;
const PIPELINES: usize = 2;
const RUNS_PER_THREAD: usize = 6;
const STEPS: u32 = 4;

fn params(seed: u64) -> GenerateParams {
    GenerateParams {
        prompt: format!("a red circle number {seed}"),
        width: Some(64),
        height: Some(64),
        steps: STEPS,
        seed,
        ..GenerateParams::default()
    }
}

/// xorshift: the same "random" cancel points every run, so a failure can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn threads_pipelines_and_cancels_give_the_serial_images() {
    let seeds: Vec<u64> = (0..(THREADS * RUNS_PER_THREAD) as u64).collect();
    // The images each seed gives alone, one at a time.
    let mut serial_pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let serial: Vec<Vec<u8>> = seeds
        .iter()
        .map(|&seed| serial_pipeline.generate(&params(seed), &mut |_| true).unwrap().pixels().to_vec())
        .collect();
    drop(serial_pipeline);

    let pipelines: Vec<SharedPipeline> = (0..PIPELINES)
        .map(|_| SharedPipeline::new(Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap()))
        .collect();
    let (cancelled, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (done, watchdog) = mpsc::channel();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (pipelines, serial, cancelled, finished, done) =
                (&pipelines, &serial, &cancelled, &finished, done.clone());
            scope.spawn(move || {
                // Tells the watchdog this thread ended, by panic too.
                struct Done(mpsc::Sender<()>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        let _ = self.0.send(());
                    }
                }
                let _done = Done(done);
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (thread as u64 + 1);
                for run in 0..RUNS_PER_THREAD {
                    let seed = (thread * RUNS_PER_THREAD + run) as u64;
                    let pipeline = &pipelines[(thread + run) % PIPELINES];
                    let roll = next(&mut state);
                    // A third are cancelled, at a step the roll picks; half of the runs are jobs.
                    let cancel_at = roll.is_multiple_of(3).then_some((roll >> 8) as u32 % STEPS + 1);
                    let result = if roll & 16 == 0 {
                        pipeline
                            .generate_batch(&params(seed), &mut |step| Some(step.step as u32) != cancel_at)
                            .map(|mut images| images.remove(0))
                    } else {
                        let job = pipeline.submit(params(seed)).unwrap();
                        if cancel_at.is_some() {
                            std::thread::sleep(Duration::from_millis(roll % 40));
                            job.cancel();
                        }
                        job.wait(None).unwrap();
                        job.take_images(1).map(|mut images| images.remove(0))
                    };
                    match result {
                        Ok(image) => {
                            // A job cancelled after its last step still finishes: both are fine.
                            assert_eq!(image.pixels(), &serial[seed as usize][..], "seed {seed} differs from alone");
                            finished.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(Error::Cancelled) => {
                            assert!(cancel_at.is_some(), "seed {seed} was cancelled without a cancel");
                            cancelled.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("seed {seed}: {e}"),
                    }
                }
            });
        }
        for _ in 0..THREADS {
            watchdog.recv_timeout(Duration::from_secs(240)).expect("a thread is stuck: deadlock?");
        }
    });
    let (cancelled, finished) = (cancelled.into_inner(), finished.into_inner());
    assert_eq!(cancelled + finished, seeds.len());
    assert!(cancelled > 0 && finished > 0, "cancelled {cancelled}, finished {finished}");
}
