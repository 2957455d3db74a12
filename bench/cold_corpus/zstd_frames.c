// libzstd alone, one thread: decompresses every data frame of the given shard files with one
// ZSTD_DCtx into one reused buffer — the floor of a cold stream per core (docs/BENCHMARKS.md,
// "Cold corpus"). A shard is zstd frames and skippable frames (docs/SHARDS.md); the skippable
// ones (metadata, index) are stepped over. The files are read into memory before timing. Then, in
// a second pass, the CRC-32 (zlib) of every compressed data frame, which the daemon checks before
// decompressing: libzstd plus that is the floor the shard format sets.
//
//   cc -O2 -o zstd_frames bench/cold_corpus/zstd_frames.c -lzstd -lz
//   zstd_frames TOKEN_WIDTH SHARD...
//
// Prints `frames=… tokens=… seconds=… tokens_per_s=… cpu_s=… cpu_s_per_1e9=… crc_cpu_s_per_1e9=…`
// (CPU of this thread while decompressing, then while checksumming; tokens = decompressed bytes /
// TOKEN_WIDTH).
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: zstd_frames TOKEN_WIDTH SHARD...\n");
        return 2;
    }
    int width = atoi(argv[1]);
    int files = argc - 2;
    unsigned char **data = calloc((size_t)files, sizeof *data);
    size_t *sizes = calloc((size_t)files, sizeof *sizes);
    for (int i = 0; i < files; i++) {
        FILE *f = fopen(argv[i + 2], "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0) { perror(argv[i + 2]); return 1; }
        sizes[i] = (size_t)st.st_size;
        data[i] = malloc(sizes[i] ? sizes[i] : 1);
        if (fread(data[i], 1, sizes[i], f) != sizes[i]) { perror(argv[i + 2]); return 1; }
        fclose(f);
    }
    size_t capacity = 0;
    unsigned char *out = NULL;
    ZSTD_DCtx *context = ZSTD_createDCtx();
    uint64_t frames = 0, bytes = 0;
    double wall = now(CLOCK_MONOTONIC), cpu = now(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < files; i++) {
        const unsigned char *p = data[i];
        size_t left = sizes[i];
        while (left > 0) {
            size_t size = ZSTD_findFrameCompressedSize(p, left);
            if (ZSTD_isError(size)) { fprintf(stderr, "%s: %s\n", argv[i + 2], ZSTD_getErrorName(size)); return 1; }
            uint32_t magic = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if ((magic & 0xFFFFFFF0u) != 0x184D2A50u) {     // not a skippable frame (ZSTD_MAGIC_SKIPPABLE_START)
                unsigned long long content = ZSTD_getFrameContentSize(p, size);
                if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR) {
                    fprintf(stderr, "%s: a frame without its content size\n", argv[i + 2]);
                    return 1;
                }
                if (content > capacity) {
                    free(out);
                    capacity = (size_t)content;
                    out = aligned_alloc(64, (capacity + 63) / 64 * 64);
                }
                size_t n = ZSTD_decompressDCtx(context, out, capacity, p, size);
                if (ZSTD_isError(n)) { fprintf(stderr, "%s: %s\n", argv[i + 2], ZSTD_getErrorName(n)); return 1; }
                frames += 1;
                bytes += n;
            }
            p += size;
            left -= size;
        }
    }
    cpu = now(CLOCK_THREAD_CPUTIME_ID) - cpu;
    wall = now(CLOCK_MONOTONIC) - wall;

    double crc_cpu = now(CLOCK_THREAD_CPUTIME_ID);
    unsigned long crc = 0;     // summed and printed, so the calls cannot be dropped
    for (int i = 0; i < files; i++) {
        const unsigned char *p = data[i];
        size_t left = sizes[i];
        while (left > 0) {
            size_t size = ZSTD_findFrameCompressedSize(p, left);
            uint32_t magic = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if ((magic & 0xFFFFFFF0u) != 0x184D2A50u) crc += crc32_z(0, p, size);
            p += size;
            left -= size;
        }
    }
    crc_cpu = now(CLOCK_THREAD_CPUTIME_ID) - crc_cpu;

    double tokens = (double)bytes / width;
    printf("frames=%llu tokens=%.0f seconds=%.4f tokens_per_s=%.1f cpu_s=%.4f cpu_s_per_1e9=%.3f"
           " crc_cpu_s_per_1e9=%.3f crc_sum=%lx\n", (unsigned long long)frames, tokens, wall, tokens / wall, cpu,
           cpu / tokens * 1e9, crc_cpu / tokens * 1e9, crc);
    ZSTD_freeDCtx(context);
    return 0;
}
