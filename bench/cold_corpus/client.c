// A minimal, fast tokenfeed client for benchmarks (docs/PROTOCOL.md): Hello, Welcome, then a recv
// loop of Batch frames into one 64-byte aligned buffer, a Credit(1) back per batch. No decoding
// beyond the frame header: the floor of any client of the protocol.
//
//   cc -O2 -o client bench/cold_corpus/client.c
//   client SOCKET BATCH_SIZE BATCHES [--credits K] [--rank R --world W] [--hash]
//
// Prints one line `batches=… tokens=… seconds=… tokens_per_s=… cpu_s=… [hash=…]`: tokens are
// B × L per batch (the tokens a batch moves the stream by, as the daemon's `tokens_served`
// counts them); seconds and tokens_per_s are timed from the first batch's arrival to the last's
// (the first batch is counted in `tokens`, not in the rate). `--hash` adds an FNV-1a 64 of every
// Batch frame received (header, metadata and tokens), to check that two daemons serve the same
// bytes; it costs time, so do not time runs with it.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { HEADER = 24, HELLO = 1, WELCOME = 2, CREDIT = 3, BATCH = 4, ERROR = 7, GOODBYE = 8 };

static void die(const char *what) {
    fprintf(stderr, "client: %s: %s\n", what, errno ? strerror(errno) : "protocol");
    exit(1);
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void header(uint8_t *h, uint16_t type, uint32_t request, uint64_t length) {
    memcpy(h, "TKFD", 4);
    put16(h + 4, 1);
    put16(h + 6, type);
    put32(h + 8, 0);
    put32(h + 12, request);
    put64(h + 16, length);
}

/// Sends all n bytes; false if the daemon has closed the connection (after its last batch it sends
/// Goodbye(end_of_stream) and closes: a Credit may then find the socket gone).
static int send_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) return 0;
        if (k <= 0) die("send");
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

/// Receives exactly n bytes; 0 at a clean end of stream before the first byte.
static int recv_all(int fd, uint8_t *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, p + got, n - got, MSG_WAITALL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) die("recv");
        if (k == 0) {
            if (got == 0) return 0;
            errno = 0;
            die("connection closed inside a frame");
        }
        got += (size_t)k;
    }
    return 1;
}

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: client SOCKET BATCH_SIZE BATCHES [--credits K] [--rank R --world W] [--hash]\n");
        return 2;
    }
    const char *path = argv[1];
    uint32_t batch_size = (uint32_t)strtoul(argv[2], NULL, 10);
    uint64_t batches = strtoull(argv[3], NULL, 10);
    uint32_t credits = 8, rank = 0, world = 1;
    int hashing = 0;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--credits") && i + 1 < argc) credits = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rank") && i + 1 < argc) rank = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--world") && i + 1 < argc) world = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--hash")) hashing = 1;
        else { fprintf(stderr, "client: unknown argument %s\n", argv[i]); return 2; }
    }

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof address.sun_path) { errno = ENAMETOOLONG; die(path); }
    strcpy(address.sun_path, path);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");

    // Hello: rank, world_size, batch_size, initial_credits, cursor_length 0, job_id "", auth_token "".
    uint8_t hello[HEADER + 22];
    header(hello, HELLO, 1, 22);
    put32(hello + 24, rank);
    put32(hello + 28, world);
    put32(hello + 32, batch_size);
    put32(hello + 36, credits);
    put16(hello + 40, 0);
    put16(hello + 42, 0);
    put16(hello + 44, 0);
    if (!send_all(fd, hello, sizeof hello)) die("send");

    uint8_t h[HEADER];
    if (!recv_all(fd, h, HEADER)) die("no answer to the Hello");
    if (memcmp(h, "TKFD", 4) || le16(h + 4) != 1) { errno = 0; die("bad frame header"); }
    uint64_t length = le64(h + 16);
    uint8_t *welcome = malloc(length ? length : 1);
    if (!welcome || !recv_all(fd, welcome, length)) die("Welcome");
    if (le16(h + 6) != WELCOME) {
        fprintf(stderr, "client: the daemon answered type %u: %.*s\n", le16(h + 6),
                length > 6 ? (int)le16(welcome + 4) : 0, length > 6 ? (const char *)welcome + 6 : "");
        return 1;
    }
    uint32_t sequence_length = le32(welcome);
    uint32_t width = welcome[4];
    free(welcome);

    // The largest Batch frame: P = B·(L+1) pieces (docs/PROTOCOL.md, 6.4).
    uint64_t rows = batch_size, row_tokens = (uint64_t)sequence_length + 1;
    uint64_t most = ((120 + 36 * rows + 28 * rows * row_tokens + 63) / 64) * 64 + rows * row_tokens * width;
    uint8_t *frame = aligned_alloc(64, (most + 63) / 64 * 64);
    if (!frame) die("allocating the frame buffer");

    uint8_t credit[HEADER + 4];
    header(credit, CREDIT, 0, 4);
    put32(credit + 24, 1);

    uint64_t received = 0, hash = 0xcbf29ce484222325ULL;
    double first = 0, last = 0;
    double cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
    while (received < batches) {
        if (!recv_all(fd, frame, HEADER)) break;
        uint16_t type = le16(frame + 6);
        uint64_t payload = le64(frame + 16);
        if (payload > most - HEADER) { errno = 0; die("frame larger than the largest Batch"); }
        if (!recv_all(fd, frame + HEADER, payload)) { errno = 0; die("payload"); }
        if (type == GOODBYE) break;
        if (type != BATCH) {
            fprintf(stderr, "client: unexpected frame type %u\n", type);
            return 1;
        }
        if (hashing) hash = fnv1a(hash, frame, HEADER + payload);
        received += 1;
        last = now(CLOCK_MONOTONIC);
        if (received == 1) first = last;
        if (received < batches) (void)send_all(fd, credit, sizeof credit);   // the Goodbye, if any, comes next
    }
    double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    uint8_t goodbye[HEADER + 4] = {0};
    header(goodbye, GOODBYE, 0, 4);
    send(fd, goodbye, sizeof goodbye, MSG_NOSIGNAL);
    close(fd);

    uint64_t per_batch = (uint64_t)batch_size * sequence_length;
    double seconds = last - first;
    printf("batches=%llu tokens=%llu seconds=%.4f tokens_per_s=%.1f cpu_s=%.3f",
           (unsigned long long)received, (unsigned long long)(received * per_batch), seconds,
           received > 1 && seconds > 0 ? (double)((received - 1) * per_batch) / seconds : 0.0, cpu);
    if (hashing) printf(" hash=%016llx", (unsigned long long)hash);
    printf("\n");
    return received == batches ? 0 : 3;
}
