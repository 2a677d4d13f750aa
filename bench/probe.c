/*
 * probe.c -- what the machine charges for the two things an event-driven
 * proxy does most: a system call, and waking a sleeping process.
 * bench/report prints both next to the CPU figures, since a virtual
 * machine can make either ten times dearer than bare metal.
 *
 *   probe      prints "syscall_ns=... wakeup_rtt_us=..."
 *
 * syscall_ns: the mean cost of getppid() over 2 s at most (1e6 calls);
 * wakeup_rtt_us: the median round trip of one byte between two processes
 * over two pipes (each side blocks in read(): two wake-ups per trip),
 * 20000 trips at most.
 */

#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRIPS  20000


static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


static int
cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


int
main(void)
{
    int      i, n, to[2], back[2];
    char     c = 'x';
    pid_t    pid;
    double   t0, t1, *rtt;

    /* system calls */

    t0 = now_ns();
    for (n = 0; n < 1000000; n++) {
        syscall(SYS_getppid);
        if ((n & 0xffff) == 0 && now_ns() - t0 > 2e9) break;
    }
    t1 = now_ns();

    printf("syscall_ns=%.0f", (t1 - t0) / n);

    /* wake-ups */

    if (pipe(to) == -1 || pipe(back) == -1) {
        perror("pipe");
        return 1;
    }

    pid = fork();
    if (pid == -1) {
        perror("fork");
        return 1;
    }

    if (pid == 0) {
        for (i = 0; i < TRIPS; i++) {
            if (read(to[0], &c, 1) != 1) _exit(0);
            if (write(back[1], &c, 1) != 1) _exit(0);
        }
        _exit(0);
    }

    rtt = malloc(TRIPS * sizeof(double));
    t0 = now_ns();

    for (n = 0; n < TRIPS && now_ns() - t0 < 2e9; n++) {
        t1 = now_ns();
        if (write(to[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) break;
        rtt[n] = (now_ns() - t1) / 1e3;
    }

    close(to[1]);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);

    qsort(rtt, (size_t) n, sizeof(double), cmp);
    printf(" wakeup_rtt_us=%.1f\n", n ? rtt[n / 2] : 0.0);

    free(rtt);
    return 0;
}
