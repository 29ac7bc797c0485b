/*
 * The job API from a polling loop, as a game engine uses it, and the threads sdrt creates.
 * Checks that a job's pixels equal the blocking call's, that queued and running jobs cancel
 * (the running one within one UNet evaluation), that sdrt_job_poll never takes a
 * millisecond, and how many threads a process gets. Prints the figures it measures.
 * Usage: job_test MODEL_DIR
 * With SDRT_TEST_MEMCHECK set (under valgrind, which runs one thread at a time and adds its
 * own) the timing and thread-count checks are skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdrt.h"
#include "check.h"

/* Whether timings and thread counts mean anything in this run. */
static int measuring = 1;

static int thread_count(void) {
    DIR *dir = opendir("/proc/self/task");
    int n = 0;
    if (!dir) return -1;
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;) n += entry->d_name[0] != '.';
    closedir(dir);
    return n;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static sdrt_pipeline *load(const char *model_dir, int32_t intra_op_threads) {
    sdrt_load_options options;
    sdrt_load_options_init(&options);
    options.intra_op_threads = intra_op_threads;
    sdrt_pipeline *pipeline = NULL;
    sdrt_status status = sdrt_pipeline_load(model_dir, &options, &pipeline);
    if (status != SDRT_STATUS_OK) {
        char message[512];
        sdrt_last_error_message(message, sizeof message);
        fprintf(stderr, "load failed: %s\n", message);
    }
    CHECK(status == SDRT_STATUS_OK);
    return pipeline;
}

static sdrt_generate_params params_with(uint32_t steps, uint64_t seed) {
    sdrt_generate_params params;
    sdrt_generate_params_init(&params);
    params.prompt = "a red circle on a blue background";
    params.width = 64;
    params.height = 64;
    params.steps = steps;
    params.seed = seed;
    params.scheduler = SDRT_SCHEDULER_EULER;
    return params;
}

static sdrt_job_progress poll(const sdrt_job *job) {
    sdrt_job_progress progress;
    sdrt_job_progress_init(&progress);
    CHECK(sdrt_job_poll(job, &progress) == SDRT_STATUS_OK);
    return progress;
}

/* A job polled every millisecond until it ends: the same pixels as the blocking call. */
static void test_polling(sdrt_pipeline *pipeline) {
    sdrt_generate_params params = params_with(12, 7);
    sdrt_image *reference = NULL;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &reference) == SDRT_STATUS_OK);

    params.preview_every = 4;
    sdrt_job *job = NULL;
    CHECK(sdrt_pipeline_submit(pipeline, &params, &job) == SDRT_STATUS_OK);
    double slowest = 0, total = 0;
    unsigned polls = 0, seen_running = 0, last_step = 0;
    for (;;) {
        double start = now_us();
        sdrt_job_progress progress;
        sdrt_job_progress_init(&progress);
        sdrt_status status = sdrt_job_poll(job, &progress);
        double took = now_us() - start;
        CHECK(status == SDRT_STATUS_OK);
        if (progress.state >= SDRT_JOB_DONE) break;
        polls++;
        total += took;
        if (took > slowest) slowest = took;
        seen_running |= progress.state == SDRT_JOB_RUNNING;
        CHECK(progress.step >= last_step); /* progress only moves forward */
        last_step = progress.step;
        sleep_ms(1);
    }
    printf("job_test: %u polls while the job ran: slowest %.1f us, mean %.2f us\n", polls, slowest,
           polls ? total / polls : 0.0);
    if (measuring) {
        CHECK(polls > 0 && seen_running);
        CHECK(slowest < 1000.0);
    }
    sdrt_job_progress done = poll(job);
    CHECK(done.state == SDRT_JOB_DONE && done.step == 12 && done.total_steps == 12);
    CHECK(done.preview_step == 12);
    sdrt_image *preview = NULL;
    CHECK(sdrt_job_copy_preview(job, 0, &preview) == SDRT_STATUS_OK);
    CHECK(sdrt_image_width(preview) == 8); /* the approximate preview: a pixel per latent */
    sdrt_image_free(preview);
    CHECK(sdrt_job_copy_preview(job, 1, &preview) == SDRT_STATUS_BUSY);

    sdrt_image *images[2] = {NULL, NULL};
    size_t count = 99;
    CHECK(sdrt_job_take_images(job, images, 0, &count) == SDRT_STATUS_INVALID_ARGUMENT);
    CHECK(count == 99);
    CHECK(sdrt_job_take_images(job, images, 2, &count) == SDRT_STATUS_OK);
    CHECK(count == 1 && images[0] && !images[1]);
    if (images[0] && reference)
        CHECK(memcmp(sdrt_image_pixels(images[0]), sdrt_image_pixels(reference), 64 * 64 * 3) == 0);
    CHECK(sdrt_job_take_images(job, images + 1, 2, &count) == SDRT_STATUS_INVALID_ARGUMENT);
    sdrt_image_free(images[0]);
    sdrt_image_free(reference);
    sdrt_job_free(job);
}

static int32_t keep_going(void *user_data, uint32_t step, uint32_t total_steps) {
    (void)user_data, (void)step, (void)total_steps;
    return 1;
}

/* A running job and one queued behind it, both cancelled. */
static void test_cancel(sdrt_pipeline *pipeline) {
    sdrt_generate_params params = params_with(400, 1);
    sdrt_job *running = NULL, *queued = NULL;
    CHECK(sdrt_pipeline_submit(pipeline, &params, &running) == SDRT_STATUS_OK);
    CHECK(sdrt_pipeline_submit(pipeline, &params, &queued) == SDRT_STATUS_OK);
    while (poll(running).step < 3) sleep_ms(1);
    CHECK(poll(queued).state == SDRT_JOB_QUEUED);
    CHECK(sdrt_job_wait(running, 0) == SDRT_STATUS_TIMEOUT);
    CHECK(sdrt_job_wait(running, 5) == SDRT_STATUS_TIMEOUT);

    /* The queued job ends at once. */
    CHECK(sdrt_job_cancel(queued) == SDRT_STATUS_OK);
    CHECK(poll(queued).state == SDRT_JOB_CANCELLED);
    CHECK(sdrt_job_wait(queued, 0) == SDRT_STATUS_OK);

    /* The running one within one UNet evaluation. */
    uint32_t at_cancel = poll(running).step;
    CHECK(sdrt_job_cancel(running) == SDRT_STATUS_OK);
    CHECK(sdrt_job_wait(running, SDRT_WAIT_FOREVER) == SDRT_STATUS_OK);
    sdrt_job_progress end = poll(running);
    printf("job_test: running job cancelled at step %u, stopped after step %u of %u\n", at_cancel, end.step,
           end.total_steps);
    CHECK(end.state == SDRT_JOB_CANCELLED);
    CHECK(end.step <= at_cancel + 1);
    sdrt_image *image = NULL;
    size_t count = 0;
    CHECK(sdrt_job_take_images(running, &image, 1, &count) == SDRT_STATUS_CANCELLED);
    CHECK(image == NULL);
    sdrt_job_free(running);
    sdrt_job_free(queued);

    /* A job's own error: the size only the model can judge. */
    params = params_with(2, 1);
    params.width = 64;
    params.height = 4;
    sdrt_job *failing = NULL;
    CHECK(sdrt_pipeline_submit(pipeline, &params, &failing) == SDRT_STATUS_OK);
    CHECK(sdrt_job_wait(failing, SDRT_WAIT_FOREVER) == SDRT_STATUS_OK);
    CHECK(poll(failing).state == SDRT_JOB_FAILED);
    CHECK(sdrt_job_take_images(failing, &image, 1, &count) == SDRT_STATUS_INVALID_ARGUMENT);
    char message[256];
    sdrt_last_error_message(message, sizeof message);
    CHECK(strstr(message, "height") != NULL);
    sdrt_job_free(failing);

    /* Jobs take no callbacks: they are polled. */
    params = params_with(2, 1);
    params.progress_callback = keep_going;
    failing = NULL;
    CHECK(sdrt_pipeline_submit(pipeline, &params, &failing) == SDRT_STATUS_INVALID_ARGUMENT);
    CHECK(failing == NULL);

    /* Freeing a job that runs cancels it and waits. */
    params = params_with(400, 1);
    CHECK(sdrt_pipeline_submit(pipeline, &params, &failing) == SDRT_STATUS_OK);
    while (poll(failing).step < 1) sleep_ms(1);
    sdrt_job_free(failing);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: job_test MODEL_DIR\n");
        return 2;
    }
    measuring = getenv("SDRT_TEST_MEMCHECK") == NULL;
    int base = thread_count();
    CHECK(sdrt_runtime_init(NULL, 3) == SDRT_STATUS_OK);
    int with_runtime = thread_count();
    CHECK(sdrt_runtime_init(NULL, 3) == SDRT_STATUS_OK);
    CHECK(sdrt_runtime_init(NULL, 5) == SDRT_STATUS_INVALID_ARGUMENT);

    sdrt_pipeline *first = load(argv[1], 0);
    sdrt_pipeline *second = load(argv[1], 0);
    int two_pipelines = thread_count();
    sdrt_job *job = NULL;
    sdrt_generate_params params = params_with(1, 0);
    CHECK(sdrt_pipeline_submit(first, &params, &job) == SDRT_STATUS_OK);
    CHECK(sdrt_job_wait(job, SDRT_WAIT_FOREVER) == SDRT_STATUS_OK);
    sdrt_job_free(job);
    int with_job_thread = thread_count();
    sdrt_pipeline *own = load(argv[1], 3);
    int with_own_pools = thread_count();
    sdrt_pipeline_free(own);
    printf("job_test: threads: %d at start, %d with the shared pool of 3, %d with two pipelines on it, "
           "%d with a job thread, %d with a pipeline of own pools of 3\n",
           base, with_runtime, two_pipelines, with_job_thread, with_own_pools);
    if (measuring) {
        /* The pool's threads less the caller's, and on some machines one ONNX Runtime starts for itself. */
        CHECK(with_runtime - base == 2 || with_runtime - base == 3);
        CHECK(two_pipelines == with_runtime); /* pipelines on the shared pool add none */
        CHECK(with_job_thread == two_pipelines + 1);
        CHECK(with_own_pools - with_job_thread == 3 * 2); /* text encoder, UNet, VAE decoder: 2 each */
    }

    test_polling(first);
    test_cancel(first);
    sdrt_pipeline_free(second);
    sdrt_pipeline_free(first);
    if (measuring) CHECK(thread_count() == with_runtime); /* the job thread ended with its pipeline */

    if (failures) {
        fprintf(stderr, "job_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("job_test: all checks passed\n");
    return 0;
}
