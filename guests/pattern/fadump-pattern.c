/*
 * fadump-pattern: fills a few locked pages with a recognisable pattern, prints the physical
 * address of each (from /proc/self/pagemap, which needs root) and then sleeps forever so the
 * pages stay resident until the crash. The host-side check recomputes every byte from the
 * printed seed and page index, and reads the pages from the vmcore at those addresses.
 *
 *   fadump-pattern [PAGES [SEED]]        (defaults: 4 pages, seed from the clock)
 *
 * Output lines (one per page, then a summary):
 *   FADUMP-PATTERN seed=0x... page=N vaddr=0x... phys=0x... pagesize=4096
 *   FADUMP-PATTERN-READY pages=N seed=0x...
 *
 * Page content: 64-bit little-endian words; word i of page p is mix(seed, p, i) below, except
 * that the first 32 bytes are the ASCII tag "FADUMP-PATTERN pNNNN sXXXXXXXX\n" so the page
 * is also easy to spot in a hex dump.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* splitmix64 finaliser over (seed, page, word): cheap, and the host recomputes it exactly. */
static uint64_t mix(uint64_t seed, uint64_t page, uint64_t word)
{
    uint64_t z = seed ^ (page << 32) ^ word;
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    long pages = argc > 1 ? strtol(argv[1], NULL, 0) : 4;
    uint64_t seed;
    if (argc > 2) {
        seed = strtoull(argv[2], NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
    }
    long ps = sysconf(_SC_PAGESIZE);
    if (pages < 1 || pages > 4096 || ps <= 0) {
        fprintf(stderr, "fadump-pattern: bad page count %ld or page size %ld\n", pages, ps);
        return 2;
    }
    size_t len = (size_t)pages * (size_t)ps;
    unsigned char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) {
        perror("fadump-pattern: mmap");
        return 1;
    }
    if (mlock(buf, len) != 0) {
        perror("fadump-pattern: mlock");
        return 1;
    }
    for (long p = 0; p < pages; p++) {
        uint64_t *w = (uint64_t *)(buf + p * ps);
        for (long i = 0; i < ps / 8; i++) {
            uint64_t v = mix(seed, (uint64_t)p, (uint64_t)i);
            unsigned char *b = (unsigned char *)&w[i];
            for (int k = 0; k < 8; k++)
                b[k] = (unsigned char)(v >> (8 * k)); /* little-endian on any host */
        }
        char tag[33];
        snprintf(tag, sizeof tag, "FADUMP-PATTERN p%04ld s%08llx\n", p,
                 (unsigned long long)(seed & 0xffffffffu));
        memcpy(buf + p * ps, tag, 32);
    }
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) {
        perror("fadump-pattern: /proc/self/pagemap");
        return 1;
    }
    for (long p = 0; p < pages; p++) {
        uintptr_t va = (uintptr_t)(buf + p * ps);
        uint64_t entry;
        off_t off = (off_t)(va / (uintptr_t)ps) * 8;
        if (pread(fd, &entry, sizeof entry, off) != (ssize_t)sizeof entry) {
            perror("fadump-pattern: pagemap read");
            return 1;
        }
        uint64_t pfn = entry & ((1ull << 55) - 1);
        if (!(entry >> 63) || pfn == 0) {
            fprintf(stderr, "fadump-pattern: page %ld not present or PFN hidden (need root)\n", p);
            return 1;
        }
        printf("FADUMP-PATTERN seed=0x%016llx page=%ld vaddr=0x%llx phys=0x%llx pagesize=%ld\n",
               (unsigned long long)seed, p, (unsigned long long)va,
               (unsigned long long)(pfn * (uint64_t)ps), ps);
    }
    close(fd);
    printf("FADUMP-PATTERN-READY pages=%ld seed=0x%016llx\n", pages, (unsigned long long)seed);
    fflush(stdout);
    for (;;)
        pause();
}
