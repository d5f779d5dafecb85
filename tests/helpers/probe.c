/* A tiny static program the runner tests run inside containers (cf. crun's
 * tests/init.c). It prints what it sees as "key=value" lines and can exit,
 * kill itself, wait for signals, leave zombies behind and write files.
 *
 *   probe info               pid, ppid, ids, groups, hostname, cwd,
 *                            capabilities, no_new_privs, fds, mounts, tty
 *   probe fds                the open fds (from /proc/self/fd)
 *   probe exit N             exit with status N
 *   probe kill SIG           kill itself with SIG
 *   probe sleep SECONDS      print "ready", then sleep
 *   probe wait-signal        print "ready", exit 100+SIG on the first signal
 *   probe zombies N          leave N orphaned zombies, print how many remain
 *   probe write PATH TEXT    write TEXT to PATH (prints errno text on failure)
 *   probe cat PATH           print PATH's content
 *   probe stat PATH          print "exists" or the errno text
 *   probe limit              print the NOFILE soft and hard limits
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void print_status_fields(void) {
    FILE* f = fopen("/proc/self/status", "re");
    if (f == NULL) {
        printf("status_error=%s\n", strerror(errno));
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        static const char* keys[] = {
            "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i) {
            size_t n = strlen(keys[i]);
            if (strncmp(line, keys[i], n) == 0) {
                char* v = line + n;
                while (*v == ' ' || *v == '\t') {
                    ++v;
                }
                printf("%.*s=%s", (int)(n - 1), keys[i], v);
            }
        }
    }
    fclose(f);
}

static void print_fds(void) {
    DIR* d = opendir("/proc/self/fd");
    if (d == NULL) {
        printf("fds_error=%s\n", strerror(errno));
        return;
    }
    int self = dirfd(d);
    int fds[1024];
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL && n < 1024) {
        if (e->d_name[0] == '.') {
            continue;
        }
        int fd = atoi(e->d_name);
        if (fd != self) {
            fds[n++] = fd;
        }
    }
    closedir(d);
    for (int i = 0; i < n; ++i) {
        for (int j = i + 1; j < n; ++j) {
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
        }
    }
    printf("fds=");
    for (int i = 0; i < n; ++i) {
        printf("%s%d", i ? "," : "", fds[i]);
    }
    printf("\n");
}

static void print_mounts(void) {
    FILE* f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL) {
        printf("mounts_error=%s\n", strerror(errno));
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL) {
        /* id parent major:minor root mountpoint options ... - fstype source */
        char* save = NULL;
        char* tok = strtok_r(line, " ", &save);
        for (int i = 0; i < 4 && tok != NULL; ++i) {
            tok = strtok_r(NULL, " ", &save);
        }
        char* mp = tok;
        char* opts = strtok_r(NULL, " ", &save);
        char* fstype = NULL;
        while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
            if (strcmp(tok, "-") == 0) {
                fstype = strtok_r(NULL, " ", &save);
                break;
            }
        }
        if (mp != NULL) {
            printf("mount=%s %s %s\n", mp, fstype ? fstype : "?", opts ? opts : "?");
        }
    }
    fclose(f);
}

static int count_zombies(void) {
    DIR* d = opendir("/proc");
    if (d == NULL) {
        return -1;
    }
    int zombies = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE* f = fopen(path, "re");
        if (f == NULL) {
            continue;
        }
        char buf[512];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char* close_paren = strrchr(buf, ')');
        if (close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z') {
            ++zombies;
        }
    }
    closedir(d);
    return zombies;
}

static volatile sig_atomic_t got_signal = 0;
static void on_signal(int sig) {
    got_signal = sig;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: probe info|fds|exit|kill|sleep|wait-signal|zombies|write|cat\n");
        return 2;
    }
    const char* cmd = argv[1];
    if (strcmp(cmd, "info") == 0) {
        printf("pid=%d\nppid=%d\n", (int)getpid(), (int)getppid());
        printf("uid=%d\ngid=%d\neuid=%d\negid=%d\n", (int)getuid(), (int)getgid(), (int)geteuid(),
               (int)getegid());
        gid_t groups[256];
        int n = getgroups(256, groups);
        printf("groups=");
        for (int i = 0; i < n; ++i) {
            printf("%s%d", i ? "," : "", (int)groups[i]);
        }
        printf("\n");
        char host[256] = {0};
        gethostname(host, sizeof host - 1);
        printf("hostname=%s\n", host);
        char cwd[4096];
        printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : strerror(errno));
        printf("tty=%d\n", isatty(0));
        print_status_fields();
        print_fds();
        print_mounts();
        return 0;
    }
    if (strcmp(cmd, "fds") == 0) {
        print_fds();
        return 0;
    }
    if (strcmp(cmd, "exit") == 0 && argc > 2) {
        return atoi(argv[2]);
    }
    if (strcmp(cmd, "kill") == 0 && argc > 2) {
        int sig = atoi(argv[2]);
        signal(sig, SIG_DFL);
        kill(getpid(), sig);
        raise(sig);
        return 99;
    }
    if (strcmp(cmd, "sleep") == 0 && argc > 2) {
        printf("ready\n");
        sleep((unsigned)atoi(argv[2]));
        return 0;
    }
    if (strcmp(cmd, "wait-signal") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        for (int sig = 1; sig < 32; ++sig) {
            if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD) {
                sigaction(sig, &sa, NULL);
            }
        }
        printf("ready\n");
        while (!got_signal) {
            pause();
        }
        printf("signal=%d\n", (int)got_signal);
        return 100 + got_signal;
    }
    if (strcmp(cmd, "zombies") == 0 && argc > 2) {
        int n = atoi(argv[2]);
        pid_t mid = fork();
        if (mid == 0) {
            for (int i = 0; i < n; ++i) {
                if (fork() == 0) {
                    _exit(0);
                }
            }
            /* Exit at once: the children are reparented to PID 1. */
            _exit(0);
        }
        waitpid(mid, NULL, 0);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        printf("zombies=%d\n", count_zombies());
        return 0;
    }
    if (strcmp(cmd, "write") == 0 && argc > 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, argv[3], strlen(argv[3])) < 0) {
            printf("error=%s\n", strerror(errno));
            return 1;
        }
        close(fd);
        printf("written\n");
        return 0;
    }
    if (strcmp(cmd, "cat") == 0 && argc > 2) {
        FILE* f = fopen(argv[2], "re");
        if (f == NULL) {
            printf("error=%s\n", strerror(errno));
            return 1;
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            fwrite(buf, 1, n, stdout);
        }
        fclose(f);
        return 0;
    }
    if (strcmp(cmd, "stat") == 0 && argc > 2) {
        struct stat st;
        if (lstat(argv[2], &st) != 0) {
            printf("error=%s\n", strerror(errno));
            return 1;
        }
        printf("exists\n");
        return 0;
    }
    if (strcmp(cmd, "limit") == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        printf("nofile=%llu:%llu\n", (unsigned long long)rl.rlim_cur,
               (unsigned long long)rl.rlim_max);
        return 0;
    }
    fprintf(stderr, "probe: unknown command %s\n", cmd);
    return 2;
}
