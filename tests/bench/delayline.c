/* delayline: a fixed one-way delay between two network namespaces, for tests/bench/latency.sh.
 *
 * This machine's kernel has no netem (CONFIG_NET_SCH_NETEM is not set, and no fq qdisc for
 * BPF-set departure times), so the delay is made in userspace: two TUN devices, A in one
 * namespace and B in another, and every packet read from one is written to the other DELAY_US
 * microseconds after it was read, in order, one thread reading and one writing per direction.
 * A packet is dropped only when 4096 wait in its direction (or it exceeds 2 KiB: MTU 1500).
 *
 * usage: delayline DELAY_US NETNS_PATH_A TUN_A NETNS_PATH_B TUN_B
 * The devices must exist (persistent, `ip tuntap add`); they are attached by name.
 * Build: gcc -O2 -pthread -o delayline delayline.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 4096
#define MAXPKT 65536
#define SLOT_BYTES 2048 /* the devices have MTU 1500 */

static long long delay_ns;

static int attach(const char *netns, const char *name) {
    int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) { perror(netns); exit(1); }
    close(nsfd);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror("open /dev/net/tun"); exit(1); }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror(name); exit(1); }
    return fd;
}

struct slot { struct timespec due; int len; unsigned char data[SLOT_BYTES]; };

struct line {
    int from, to;
    struct slot *slots;
    unsigned head, tail; /* head: next to write; tail: next free */
    pthread_mutex_t lock;
    pthread_cond_t ready;
};

static void add_ns(struct timespec *t, long long ns) {
    t->tv_sec += ns / 1000000000LL;
    t->tv_nsec += ns % 1000000000LL;
    if (t->tv_nsec >= 1000000000L) { t->tv_sec++; t->tv_nsec -= 1000000000L; }
}

static void *reader(void *arg) {
    struct line *l = arg;
    static __thread unsigned char buf[MAXPKT];
    for (;;) {
        ssize_t n = read(l->from, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno != EINTR && errno != EAGAIN) { perror("read"); exit(1); }
            continue;
        }
        struct timespec due;
        clock_gettime(CLOCK_MONOTONIC, &due);
        add_ns(&due, delay_ns);
        pthread_mutex_lock(&l->lock);
        if (l->tail - l->head < SLOTS && n <= SLOT_BYTES) {
            struct slot *s = &l->slots[l->tail % SLOTS];
            s->due = due;
            s->len = (int)n;
            memcpy(s->data, buf, (size_t)n);
            l->tail++;
            pthread_cond_signal(&l->ready);
        }
        pthread_mutex_unlock(&l->lock);
    }
    return NULL;
}

static void *writer(void *arg) {
    struct line *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        while (l->head == l->tail) pthread_cond_wait(&l->ready, &l->lock);
        struct slot *s = &l->slots[l->head % SLOTS];
        pthread_mutex_unlock(&l->lock);
        /* The reader never touches a filled slot: it is ours until head moves. */
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &s->due, NULL) == EINTR) {}
        ssize_t w = write(l->to, s->data, (size_t)s->len);
        (void)w;
        pthread_mutex_lock(&l->lock);
        l->head++;
        pthread_mutex_unlock(&l->lock);
    }
    return NULL;
}

static struct line *line_new(int from, int to) {
    struct line *l = calloc(1, sizeof *l);
    l->slots = calloc(SLOTS, sizeof(struct slot));
    if (!l || !l->slots) { perror("calloc"); exit(1); }
    l->from = from;
    l->to = to;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->ready, NULL);
    return l;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s DELAY_US NETNS_PATH_A TUN_A NETNS_PATH_B TUN_B\n", argv[0]);
        return 2;
    }
    delay_ns = atoll(argv[1]) * 1000LL;
    int a = attach(argv[2], argv[3]);
    int b = attach(argv[4], argv[5]);
    struct line *ab = line_new(a, b), *ba = line_new(b, a);
    pthread_t t[4];
    pthread_create(&t[0], NULL, reader, ab);
    pthread_create(&t[1], NULL, writer, ab);
    pthread_create(&t[2], NULL, reader, ba);
    pthread_create(&t[3], NULL, writer, ba);
    fprintf(stderr, "delayline: %s <-> %s, %s us each way\n", argv[3], argv[5], argv[1]);
    pthread_join(t[0], NULL);
    return 0;
}
