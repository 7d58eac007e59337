/*
 * vmcore-save: copies /proc/vmcore to a fresh (all-zero) disk at the same offsets, writing only
 * the blocks that are not all zeros. The disk then reads back byte-identical to the vmcore:
 * every byte is read and compared, only the writes of zero blocks are skipped. For a guest of
 * hosting size most of RAM was never touched (8 GiB, a few hundred MiB in use), and writing
 * gigabytes of zeros through the nested stack's virtio disks is what made `dd` slow.
 *
 *   vmcore-save SRC DST [OFFSET]
 *
 * OFFSET (bytes, decimal or 0x hex, a multiple of 4096; default 0): where on DST the copy
 * starts, so several dumps can sit on one disk (the soak scenario gives each cycle its own
 * region). DST must read as zeros where nothing is written (the nested runner's export image
 * is a new sparse file every run, and each region is written once). Prints, on success:
 *   VMCORE-SAVE-LOAD paddr=0x... memsz=0x... offset=0x...     (one per PT_LOAD, from the ELF
 *                                                              program headers: what RAM the
 *                                                              dump covers)
 *   VMCORE-SAVE-DONE read=N written=N blocks=N zero_blocks=N
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define BLOCK (64u << 10)
#define MAX_PHDRS 4096

static int all_zero(const unsigned char *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return 0;
    for (size_t i = n & ~(size_t)7; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int print_loads(int fd)
{
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS) {
        fprintf(stderr, "vmcore-save: not an ELF64 core with 1..%d program headers\n",
                MAX_PHDRS);
        return -1;
    }
    size_t len = (size_t)eh.e_phnum * sizeof(Elf64_Phdr);
    Elf64_Phdr *ph = malloc(len);
    if (!ph || pread(fd, ph, len, (off_t)eh.e_phoff) != (ssize_t)len) {
        fprintf(stderr, "vmcore-save: cannot read the program headers\n");
        free(ph);
        return -1;
    }
    for (int i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_LOAD)
            printf("VMCORE-SAVE-LOAD paddr=0x%llx memsz=0x%llx offset=0x%llx\n",
                   (unsigned long long)ph[i].p_paddr, (unsigned long long)ph[i].p_memsz,
                   (unsigned long long)ph[i].p_offset);
    free(ph);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: vmcore-save SRC DST [OFFSET]\n");
        return 2;
    }
    unsigned long long base = 0;
    if (argc == 4) {
        char *end = NULL;
        errno = 0;
        base = strtoull(argv[3], &end, 0);
        if (errno || !end || *end || argv[3][0] == '-' || base % 4096 || base > (1ull << 50)) {
            fprintf(stderr, "vmcore-save: bad OFFSET %s (bytes, a multiple of 4096)\n", argv[3]);
            return 2;
        }
    }
    int in = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_WRONLY);
    if (in < 0 || out < 0) {
        perror("vmcore-save: open");
        return 1;
    }
    if (print_loads(in) != 0)
        return 1;
    unsigned char *buf = aligned_alloc(4096, CHUNK);
    if (!buf) {
        perror("vmcore-save: alloc");
        return 1;
    }
    unsigned long long off = 0, written = 0, blocks = 0, zero = 0;
    for (;;) {
        ssize_t n = pread(in, buf, CHUNK, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "vmcore-save: read at %llu: %s\n", off, strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        for (size_t b = 0; b < (size_t)n; b += BLOCK) {
            size_t len = (size_t)n - b < BLOCK ? (size_t)n - b : BLOCK;
            blocks++;
            if (all_zero(buf + b, len)) {
                zero++;
                continue;
            }
            if (pwrite(out, buf + b, len, (off_t)(base + off + b)) != (ssize_t)len) {
                fprintf(stderr, "vmcore-save: write at %llu: %s\n", base + off + b,
                        strerror(errno));
                return 1;
            }
            written += len;
        }
        off += (unsigned long long)n;
    }
    if (fsync(out) != 0) {
        perror("vmcore-save: fsync");
        return 1;
    }
    printf("VMCORE-SAVE-DONE read=%llu written=%llu blocks=%llu zero_blocks=%llu offset=%llu\n",
           off, written, blocks, zero, base);
    return 0;
}
