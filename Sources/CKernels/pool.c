// The engine's thread pool: workers that stay awake (spinning) for a while after each job, so that the many
// short parallel sections of a decode step (a matrix-vector product takes 0.1–1 ms) start on every core at
// once. Dispatch's concurrentPerform woke its second thread 80–100 µs late on this project's 2-core machine,
// which serialised most of a decode step's products.
//
// One job at a time: a caller that finds the pool busy (another thread's job, or a task of the pool's own
// calling in again) runs its tasks itself. A job's tasks are claimed through one 64-bit word holding the job's
// generation, its task count and the next index, so that a worker still busy with an earlier job can never
// take (or lose) a task of the next one.

#include "accm_kernels.h"
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/// How long an idle worker spins before it sleeps: longer than the gaps between a decode step's products,
/// short enough that an idle server gives its cores back at once.
#define SPIN_NANOSECONDS 500000ull
#define MAX_WORKERS 255

static struct {
    pthread_mutex_t submit;      // held by the caller of the running job
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    int sleepers;                // under sleep_lock
    int workers;                 // started so far (under submit)
    _Atomic uint64_t generation; // of the latest job
    _Atomic int helpers;         // workers the latest job asked for (workers 0 ..< helpers take part)
    _Atomic uint64_t claims;     // generation << 32 | count << 16 | next index
    _Atomic size_t done;         // tasks of the current job finished
    accm_task fn;                // the current job; stable while any of its tasks is unclaimed or running
    void *context;
} pool = {
    .submit = PTHREAD_MUTEX_INITIALIZER,
    .sleep_lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

/// Set while a thread runs a task, so that a parallel call inside a task runs on that thread.
static __thread int inside_task;

static inline void cpu_relax(void) {
#if ACCM_X86
    _mm_pause();
#endif
}

static uint64_t now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/// Claims and runs tasks of job `generation` until none is left; returns how many it ran.
static size_t run_tasks(uint64_t generation) {
    size_t ran = 0;
    uint64_t claim = atomic_load_explicit(&pool.claims, memory_order_acquire);
    for (;;) {
        if ((claim >> 32) != (generation & 0xFFFFFFFFull)) return ran;
        uint64_t index = claim & 0xFFFF, count = (claim >> 16) & 0xFFFF;
        if (index >= count) return ran;
        if (!atomic_compare_exchange_weak_explicit(&pool.claims, &claim, claim + 1, memory_order_acq_rel,
                                                   memory_order_acquire)) continue;
        inside_task = 1;
        pool.fn(pool.context, (size_t)index);
        inside_task = 0;
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        ran++;
        claim = atomic_load_explicit(&pool.claims, memory_order_acquire);
    }
}

/// Waits until a job newer than `seen` is published and returns its generation: spinning for a while if this
/// worker takes part in jobs of the current size (the next one likely follows within microseconds), else asleep.
static uint64_t wait_for_job(uint64_t seen, int id) {
    uint64_t generation;
    if (id < atomic_load_explicit(&pool.helpers, memory_order_relaxed)) {
        uint64_t started = now_nanoseconds();
        unsigned spins = 0;
        while ((generation = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen) {
            cpu_relax();
            if (++spins % 256 == 0) {
                if (now_nanoseconds() - started > SPIN_NANOSECONDS) break;
                sched_yield();  // lets a descheduled thread of the job run where threads outnumber cores
            }
        }
        if (generation != seen) return generation;
    }
    pthread_mutex_lock(&pool.sleep_lock);
    pool.sleepers++;
    while ((generation = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&pool.wake, &pool.sleep_lock);
    pool.sleepers--;
    pthread_mutex_unlock(&pool.sleep_lock);
    return generation;
}

static void *worker_main(void *argument) {
    int id = (int)(intptr_t)argument;
    uint64_t seen = atomic_load_explicit(&pool.generation, memory_order_acquire);
    for (;;) {
        seen = wait_for_job(seen, id);
        if (id < atomic_load_explicit(&pool.helpers, memory_order_relaxed)) run_tasks(seen);
    }
    return NULL;
}

/// Starts workers until there are `wanted` (called under `submit`); returns how many there are.
static int ensure_workers(int wanted) {
    if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
    while (pool.workers < wanted) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, worker_main, (void *)(intptr_t)pool.workers);
        pthread_attr_destroy(&attributes);
        if (failed) break;
        pool.workers++;
    }
    return pool.workers;
}

void accm_parallel_for(size_t count, int threads, accm_task fn, void *context) {
    if (count == 0) return;
    if (count == 1 || threads <= 1 || count > 0xFFFF || inside_task || pthread_mutex_trylock(&pool.submit) != 0) {
        for (size_t i = 0; i < count; i++) fn(context, i);
        return;
    }
    int helpers = ensure_workers(threads - 1);
    if (helpers == 0) {
        pthread_mutex_unlock(&pool.submit);
        for (size_t i = 0; i < count; i++) fn(context, i);
        return;
    }
    atomic_store_explicit(&pool.helpers, helpers < threads - 1 ? helpers : threads - 1, memory_order_relaxed);
    pool.fn = fn;
    pool.context = context;
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    uint64_t generation = atomic_load_explicit(&pool.generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool.claims, (generation & 0xFFFFFFFFull) << 32 | (uint64_t)count << 16, memory_order_release);
    atomic_store_explicit(&pool.generation, generation, memory_order_seq_cst);
    pthread_mutex_lock(&pool.sleep_lock);
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_lock);

    run_tasks(generation);
    for (unsigned spins = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < count; spins++) {
        cpu_relax();
        if (spins % 1024 == 0) sched_yield();
    }
    pthread_mutex_unlock(&pool.submit);
}
