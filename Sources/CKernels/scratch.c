// Per-thread scratch buffers: prefill converts weight blocks into one, reused call after call.

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

float *accm_thread_scratch(size_t count) {
    // Kept for the thread's lifetime (the engine's worker threads are long-lived); freed only when grown.
    static __thread float *buffer = NULL;
    static __thread size_t capacity = 0;
    if (count > capacity) {
        free(buffer);
        size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
        buffer = aligned_alloc(64, bytes);
        capacity = buffer ? count : 0;
    }
    return buffer;
}
