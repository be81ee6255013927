/*
 * accm_client: a language-neutral conformance peer for the ACCM cluster's client protocol.
 *
 * It speaks to the coordinator's client ROUTER through a ZMQ_DEALER, using only libzmq and the C code
 * protoc-c generates from Protos/accm/v1/envelope.proto (see build.sh): one SUBMIT of two frames
 * (envelope, raw image bytes), then zero or more PARTIAL replies and exactly one ANSWER or ERROR.
 *
 *   accm_client --coordinator tcp://HOST:PORT --image FILE [--keep N]
 *               [--pruner none|random|uniform|cls-attention|text-guided|accm] [--no-caption]
 *               [--max-tokens N] [--timeout-ms N] QUESTION
 *
 * Exit status: 0 answer (and the streamed deltas equal Answer.text), 1 the coordinator answered an Error,
 * 2 the deltas differ from Answer.text, 3 a protocol violation by the coordinator (a gap in the partial
 * sequence, an unparsable envelope, a wrong schema version, an unexpected body), 4 no final reply within
 * --timeout-ms, 64 bad arguments or an unreadable image, 70 a local failure (libzmq, memory).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "accm/v1/envelope.pb-c.h"

enum {
    EXIT_ANSWER = 0,
    EXIT_REMOTE_ERROR = 1,
    EXIT_TEXT_MISMATCH = 2,
    EXIT_PROTOCOL = 3,
    EXIT_TIMEOUT = 4,
    EXIT_USAGE = 64,
    EXIT_LOCAL = 70,
};

static const char usage_text[] =
    "usage: accm_client --coordinator tcp://HOST:PORT --image FILE [--keep N]\n"
    "                   [--pruner none|random|uniform|cls-attention|text-guided|accm] [--no-caption]\n"
    "                   [--max-tokens N] [--timeout-ms N] QUESTION\n"
    "defaults: --keep 16 --pruner accm (caption on) --max-tokens 128 --timeout-ms 60000\n";

struct options {
    const char *coordinator;
    const char *image_path;
    const char *question;
    int64_t keep;
    Accm__V1__PruningKind pruner;
    int compensate;
    int64_t max_tokens;
    long timeout_ms;
};

static const struct {
    const char *name;
    Accm__V1__PruningKind kind;
} pruners[] = {
    {"none", ACCM__V1__PRUNING_KIND__PRUNING_KIND_NONE},
    {"random", ACCM__V1__PRUNING_KIND__PRUNING_KIND_RANDOM},
    {"uniform", ACCM__V1__PRUNING_KIND__PRUNING_KIND_UNIFORM},
    {"cls-attention", ACCM__V1__PRUNING_KIND__PRUNING_KIND_CLASS_ATTENTION},
    {"text-guided", ACCM__V1__PRUNING_KIND__PRUNING_KIND_TEXT_GUIDED},
    {"accm", ACCM__V1__PRUNING_KIND__PRUNING_KIND_ACCM},
};

static int usage_error(const char *fmt, const char *arg)
{
    fputs("accm_client: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* A whole decimal int64, nothing else. */
static int parse_int64(const char *text, int64_t *value)
{
    char *end = NULL;
    long long parsed;

    if (text[0] == '\0')
        return -1;
    errno = 0;
    parsed = strtoll(text, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0')
        return -1;
    *value = (int64_t)parsed;
    return 0;
}

/* Returns 0, or an exit status (EXIT_USAGE; EXIT_ANSWER for --help after printing the usage). */
static int parse_arguments(int argc, char **argv, struct options *options)
{
    int i;
    int options_done = 0;

    options->coordinator = NULL;
    options->image_path = NULL;
    options->question = NULL;
    options->keep = 16;
    options->pruner = ACCM__V1__PRUNING_KIND__PRUNING_KIND_ACCM;
    options->compensate = 1;
    options->max_tokens = 128;
    options->timeout_ms = 60000;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;

        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (options->question != NULL)
                return usage_error("more than one QUESTION: '%s' (quote the question)", arg);
            options->question = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, stdout);
            return -1;
        }
        if (strcmp(arg, "--no-caption") == 0) {
            options->compensate = 0;
            continue;
        }
        if (strcmp(arg, "--coordinator") != 0 && strcmp(arg, "--image") != 0 && strcmp(arg, "--keep") != 0
            && strcmp(arg, "--pruner") != 0 && strcmp(arg, "--max-tokens") != 0
            && strcmp(arg, "--timeout-ms") != 0)
            return usage_error("unknown option '%s'", arg);
        if (i + 1 >= argc)
            return usage_error("option '%s' needs a value", arg);
        value = argv[++i];

        if (strcmp(arg, "--coordinator") == 0) {
            if (value[0] == '\0')
                return usage_error("--coordinator: empty address%s", "");
            options->coordinator = value;
        } else if (strcmp(arg, "--image") == 0) {
            if (value[0] == '\0')
                return usage_error("--image: empty path%s", "");
            options->image_path = value;
        } else if (strcmp(arg, "--keep") == 0) {
            /* Any integer: the coordinator, not this peer, owns the bounds (and names the field). */
            if (parse_int64(value, &options->keep) != 0)
                return usage_error("--keep: '%s' is not an integer", value);
        } else if (strcmp(arg, "--max-tokens") == 0) {
            if (parse_int64(value, &options->max_tokens) != 0)
                return usage_error("--max-tokens: '%s' is not an integer", value);
        } else if (strcmp(arg, "--timeout-ms") == 0) {
            int64_t timeout = 0;
            if (parse_int64(value, &timeout) != 0 || timeout <= 0 || timeout > INT_MAX)
                return usage_error("--timeout-ms: '%s' is not a positive number of milliseconds", value);
            options->timeout_ms = (long)timeout;
        } else { /* --pruner */
            size_t p;
            int found = 0;
            for (p = 0; p < sizeof pruners / sizeof pruners[0]; p++) {
                if (strcmp(value, pruners[p].name) == 0) {
                    options->pruner = pruners[p].kind;
                    found = 1;
                    break;
                }
            }
            if (!found)
                return usage_error(
                    "--pruner: unknown pruner '%s' (none, random, uniform, cls-attention, text-guided, accm)",
                    value);
        }
    }

    if (options->coordinator == NULL)
        return usage_error("missing --coordinator tcp://HOST:PORT%s", "");
    if (options->image_path == NULL)
        return usage_error("missing --image FILE%s", "");
    if (options->question == NULL)
        return usage_error("missing QUESTION%s", "");
    return 0;
}

/* Reads a whole file; returns 0, or -1 with errno set. */
static int read_file(const char *path, unsigned char **bytes, size_t *length)
{
    FILE *file = fopen(path, "rb");
    unsigned char *buffer = NULL;
    size_t capacity = 0;
    size_t used = 0;
    int saved_errno;

    *bytes = NULL;
    *length = 0;
    if (file == NULL)
        return -1;
    for (;;) {
        size_t got;
        if (used == capacity) {
            size_t grown = capacity == 0 ? 65536 : capacity * 2;
            unsigned char *bigger;
            if (grown < capacity) {
                errno = EFBIG;
                goto fail;
            }
            bigger = realloc(buffer, grown);
            if (bigger == NULL) {
                errno = ENOMEM;
                goto fail;
            }
            buffer = bigger;
            capacity = grown;
        }
        got = fread(buffer + used, 1, capacity - used, file);
        used += got;
        if (got == 0) {
            if (ferror(file)) {
                if (errno == 0)
                    errno = EIO;
                goto fail;
            }
            break; /* end of file */
        }
    }
    fclose(file);
    *bytes = buffer;
    *length = used;
    return 0;

fail:
    saved_errno = errno;
    fclose(file);
    free(buffer);
    errno = saved_errno;
    return -1;
}

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Appends `delta` to the growing text; returns 0 or -1 (out of memory). */
static int append_text(char **text, size_t *length, size_t *capacity, const char *delta)
{
    size_t add = strlen(delta);
    if (*length + add + 1 > *capacity) {
        size_t grown = *capacity == 0 ? 256 : *capacity;
        char *bigger;
        while (grown < *length + add + 1)
            grown *= 2;
        bigger = realloc(*text, grown);
        if (bigger == NULL)
            return -1;
        *text = bigger;
        *capacity = grown;
    }
    memcpy(*text + *length, delta, add);
    *length += add;
    (*text)[*length] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    struct options options;
    int status;
    unsigned char *image = NULL;
    size_t image_length = 0;
    uint8_t *packed = NULL;
    size_t packed_length;
    char request_id[64];
    void *context = NULL;
    void *dealer = NULL;
    Accm__V1__Envelope *reply = NULL;
    char *text = NULL;
    size_t text_length = 0;
    size_t text_capacity = 0;
    int printed_any = 0;
    uint64_t next_sequence = 0;
    int64_t deadline;
    int linger = 0;

    status = parse_arguments(argc, argv, &options);
    if (status == -1)
        return EXIT_ANSWER; /* --help */
    if (status != 0)
        return status;

    if (read_file(options.image_path, &image, &image_length) != 0) {
        fprintf(stderr, "accm_client: cannot read image file '%s': %s\n", options.image_path, strerror(errno));
        return EXIT_USAGE;
    }

    snprintf(request_id, sizeof request_id, "c-peer-%ld-%" PRId64, (long)getpid(), wall_ms());

    /* The SUBMIT envelope: everything lives on the stack; only the packed bytes are allocated. */
    {
        Accm__V1__Envelope envelope = ACCM__V1__ENVELOPE__INIT;
        Accm__V1__TensorDescriptor image_tensor = ACCM__V1__TENSOR_DESCRIPTOR__INIT;
        Accm__V1__TensorDescriptor *tensors[1];
        uint64_t shape[1];
        Accm__V1__Submit submit = ACCM__V1__SUBMIT__INIT;
        Accm__V1__Pruning pruning = ACCM__V1__PRUNING__INIT;
        Accm__V1__Generation generation = ACCM__V1__GENERATION__INIT;

        shape[0] = (uint64_t)image_length;
        image_tensor.name = "image";
        image_tensor.dtype = ACCM__V1__DTYPE__DTYPE_U8;
        image_tensor.n_shape = 1;
        image_tensor.shape = shape;
        image_tensor.byte_length = (uint64_t)image_length;
        image_tensor.frame = 1;
        tensors[0] = &image_tensor;

        pruning.kind = options.pruner;
        generation.max_new_tokens = options.max_tokens;
        generation.temperature = 0.0f;
        generation.top_p = 1.0f;
        generation.seed = 0;

        submit.question = (char *)options.question;
        submit.budget = options.keep;
        submit.pruning = &pruning;
        submit.compensate = options.compensate ? 1 : 0;
        submit.generation = &generation;

        envelope.schema_version = ACCM__V1__SCHEMA_VERSION__SCHEMA_VERSION_CURRENT;
        envelope.request_id = request_id;
        envelope.deadline_ms = 0;
        envelope.n_tensors = 1;
        envelope.tensors = tensors;
        envelope.body_case = ACCM__V1__ENVELOPE__BODY_SUBMIT;
        envelope.submit = &submit;

        packed_length = accm__v1__envelope__get_packed_size(&envelope);
        packed = malloc(packed_length > 0 ? packed_length : 1);
        if (packed == NULL) {
            fprintf(stderr, "accm_client: out of memory\n");
            status = EXIT_LOCAL;
            goto done;
        }
        if (accm__v1__envelope__pack(&envelope, packed) != packed_length) {
            fprintf(stderr, "accm_client: packing the SUBMIT envelope failed\n");
            status = EXIT_LOCAL;
            goto done;
        }
    }

    context = zmq_ctx_new();
    if (context == NULL) {
        fprintf(stderr, "accm_client: zmq_ctx_new: %s\n", zmq_strerror(zmq_errno()));
        status = EXIT_LOCAL;
        goto done;
    }
    dealer = zmq_socket(context, ZMQ_DEALER);
    if (dealer == NULL) {
        fprintf(stderr, "accm_client: zmq_socket: %s\n", zmq_strerror(zmq_errno()));
        status = EXIT_LOCAL;
        goto done;
    }
    if (zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        fprintf(stderr, "accm_client: zmq_setsockopt(ZMQ_LINGER): %s\n", zmq_strerror(zmq_errno()));
        status = EXIT_LOCAL;
        goto done;
    }
    if (zmq_connect(dealer, options.coordinator) != 0) {
        fprintf(stderr, "accm_client: --coordinator: cannot connect to '%s': %s\n", options.coordinator,
                zmq_strerror(zmq_errno()));
        status = EXIT_USAGE;
        goto done;
    }

    deadline = monotonic_ms() + options.timeout_ms;

    /* One multipart message of exactly two frames: the envelope, then the image bytes. */
    if (zmq_send(dealer, packed, packed_length, ZMQ_SNDMORE) < 0
        || zmq_send(dealer, image, image_length, 0) < 0) {
        fprintf(stderr, "accm_client: sending the SUBMIT failed: %s\n", zmq_strerror(zmq_errno()));
        status = EXIT_LOCAL;
        goto done;
    }
    free(packed);
    packed = NULL;
    free(image);
    image = NULL;

    for (;;) {
        zmq_pollitem_t item;
        zmq_msg_t frame;
        int more = 0;
        size_t more_size = sizeof more;
        int64_t remaining = deadline - monotonic_ms();
        int polled;

        if (remaining <= 0) {
            fprintf(stderr, "accm_client: timeout: no final reply from %s within %ld ms (request %s)\n",
                    options.coordinator, options.timeout_ms, request_id);
            status = EXIT_TIMEOUT;
            goto done;
        }
        item.socket = dealer;
        item.fd = 0;
        item.events = ZMQ_POLLIN;
        item.revents = 0;
        polled = zmq_poll(&item, 1, (long)remaining);
        if (polled < 0) {
            if (zmq_errno() == EINTR)
                continue;
            fprintf(stderr, "accm_client: zmq_poll: %s\n", zmq_strerror(zmq_errno()));
            status = EXIT_LOCAL;
            goto done;
        }
        if (polled == 0 || !(item.revents & ZMQ_POLLIN))
            continue; /* the deadline check above ends the wait */

        /* Frame 0: the envelope (a DEALER receives no routing-id frame). */
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, dealer, 0) < 0) {
            int error = zmq_errno();
            zmq_msg_close(&frame);
            if (error == EINTR || error == EAGAIN)
                continue;
            fprintf(stderr, "accm_client: zmq_msg_recv: %s\n", zmq_strerror(error));
            status = EXIT_LOCAL;
            goto done;
        }
        reply = accm__v1__envelope__unpack(NULL, zmq_msg_size(&frame), zmq_msg_data(&frame));
        zmq_msg_close(&frame);

        /* Any further frames of the same message: read and discard. */
        if (zmq_getsockopt(dealer, ZMQ_RCVMORE, &more, &more_size) != 0)
            more = 0;
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            if (zmq_msg_recv(&extra, dealer, 0) < 0) {
                int error = zmq_errno();
                zmq_msg_close(&extra);
                if (error == EINTR)
                    continue;
                fprintf(stderr, "accm_client: zmq_msg_recv: %s\n", zmq_strerror(error));
                status = EXIT_LOCAL;
                goto done;
            }
            zmq_msg_close(&extra);
            more_size = sizeof more;
            if (zmq_getsockopt(dealer, ZMQ_RCVMORE, &more, &more_size) != 0)
                more = 0;
        }

        if (reply == NULL) {
            fprintf(stderr, "accm_client: protocol: a reply's frame 0 is not a parsable accm.v1.Envelope\n");
            status = EXIT_PROTOCOL;
            goto done;
        }
        if (reply->request_id == NULL || strcmp(reply->request_id, request_id) != 0) {
            accm__v1__envelope__free_unpacked(reply, NULL);
            reply = NULL;
            continue; /* another request's reply */
        }
        if (reply->schema_version != ACCM__V1__SCHEMA_VERSION__SCHEMA_VERSION_CURRENT) {
            fprintf(stderr, "accm_client: protocol: a reply has schema_version %" PRIu32 ", expected %d\n",
                    reply->schema_version, ACCM__V1__SCHEMA_VERSION__SCHEMA_VERSION_CURRENT);
            status = EXIT_PROTOCOL;
            goto done;
        }

        switch (reply->body_case) {
        case ACCM__V1__ENVELOPE__BODY_PARTIAL: {
            const Accm__V1__PartialText *partial = reply->partial;
            const char *delta = partial->delta != NULL ? partial->delta : "";
            if (partial->sequence < next_sequence)
                break; /* a repeat: already printed */
            if (partial->sequence > next_sequence) {
                if (printed_any)
                    fputc('\n', stdout);
                fflush(stdout);
                fprintf(stderr, "accm_client: protocol: partial sequence gap: got %" PRIu64 ", expected %" PRIu64 "\n",
                        partial->sequence, next_sequence);
                status = EXIT_PROTOCOL;
                goto done;
            }
            fputs(delta, stdout);
            fflush(stdout);
            printed_any = 1;
            if (append_text(&text, &text_length, &text_capacity, delta) != 0) {
                fprintf(stderr, "accm_client: out of memory\n");
                status = EXIT_LOCAL;
                goto done;
            }
            next_sequence++;
            break;
        }
        case ACCM__V1__ENVELOPE__BODY_ANSWER: {
            const Accm__V1__Answer *answer = reply->answer;
            const char *answer_text = answer->text != NULL ? answer->text : "";
            const char *streamed = text != NULL ? text : "";
            fputc('\n', stdout);
            fflush(stdout);
            if (strcmp(streamed, answer_text) != 0) {
                fprintf(stderr, "accm_client: the streamed deltas differ from Answer.text\n");
                fprintf(stderr, "  deltas:      \"%s\"\n", streamed);
                fprintf(stderr, "  Answer.text: \"%s\"\n", answer_text);
                status = EXIT_TEXT_MISMATCH;
                goto done;
            }
            fprintf(stderr, "finish: %d tokens: %zu\n", (int)answer->finish_reason, answer->n_tokens);
            status = EXIT_ANSWER;
            goto done;
        }
        case ACCM__V1__ENVELOPE__BODY_ERROR: {
            const Accm__V1__Error *error = reply->error;
            if (printed_any) {
                fputc('\n', stdout);
                fflush(stdout);
            }
            fprintf(stderr, "error %d (%s): %s\n", (int)error->code, error->field != NULL ? error->field : "",
                    error->message != NULL ? error->message : "");
            status = EXIT_REMOTE_ERROR;
            goto done;
        }
        default:
            fprintf(stderr, "accm_client: protocol: unexpected reply body (field %d) for request %s\n",
                    (int)reply->body_case, request_id);
            status = EXIT_PROTOCOL;
            goto done;
        }
        accm__v1__envelope__free_unpacked(reply, NULL);
        reply = NULL;
    }

done:
    if (reply != NULL)
        accm__v1__envelope__free_unpacked(reply, NULL);
    free(text);
    free(packed);
    free(image);
    if (dealer != NULL)
        zmq_close(dealer);
    if (context != NULL)
        zmq_ctx_term(context);
    return status;
}
