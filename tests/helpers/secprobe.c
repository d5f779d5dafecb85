/* secprobe: attacks the tests in tests/security/ run inside a container.
 * Static, so that it runs in any image (busybox cannot make these calls).
 * Each command makes one system call and prints "<name>: ok" or
 * "<name>: <ERRNO>" (e.g. "userns: EPERM"); read-key prints the key's
 * payload when it can read it. Exit status: 0, or 2 for a usage error.
 *
 *   secprobe userns               unshare(CLONE_NEWUSER)
 *   secprobe clone-userns         clone(CLONE_NEWUSER) (a child that exits at once)
 *   secprobe clone3               clone3 with a bad size (EINVAL when allowed)
 *   secprobe add-key              add_key to the process keyring
 *   secprobe read-key DESC        request_key("user", DESC) + KEYCTL_READ
 *   secprobe vsock                socket(AF_VSOCK)
 *   secprobe kexec                kexec_load(0, 0, NULL, 0)
 *   secprobe mkdir PATH           mkdir(PATH, 0755)
 *   secprobe chown PATH           chown(PATH, 1, 1)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static int report(const char* name, long r) {
    if (r < 0) {
        const char* e = strerrorname_np(errno);
        printf("%s: %s\n", name, e != NULL ? e : "E?");
    } else {
        printf("%s: ok\n", name);
    }
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: secprobe COMMAND [ARG]\n");
        return 2;
    }
    const char* cmd = argv[1];
    const char* arg = argc > 2 ? argv[2] : NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(cmd, "userns") == 0) {
        return report(cmd, unshare(CLONE_NEWUSER));
    }
    if (strcmp(cmd, "clone-userns") == 0) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) {
            _exit(0);
        }
        if (pid > 0) {
            waitpid((pid_t)pid, NULL, 0);
        }
        return report(cmd, pid);
    }
    if (strcmp(cmd, "clone3") == 0) {
        char args[8] = {0};
        return report(cmd, syscall(SYS_clone3, args, sizeof args));
    }
    if (strcmp(cmd, "add-key") == 0) {
        return report(
            cmd, syscall(SYS_add_key, "user", "strata-secprobe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
    }
    if (strcmp(cmd, "read-key") == 0 && arg != NULL) {
        long key = syscall(SYS_request_key, "user", arg, NULL, 0);
        if (key < 0) {
            return report("request_key", key);
        }
        char buf[256];
        long n = syscall(SYS_keyctl, KEYCTL_READ, key, buf, sizeof buf - 1);
        if (n < 0) {
            return report("keyctl_read", n);
        }
        buf[n < (long)sizeof buf - 1 ? n : (long)sizeof buf - 1] = '\0';
        printf("read-key: %s\n", buf);
        return 0;
    }
    if (strcmp(cmd, "vsock") == 0) {
        return report(cmd, socket(AF_VSOCK, SOCK_STREAM, 0));
    }
    if (strcmp(cmd, "kexec") == 0) {
        return report(cmd, syscall(SYS_kexec_load, 0, 0, NULL, 0));
    }
    if (strcmp(cmd, "mkdir") == 0 && arg != NULL) {
        return report(cmd, mkdir(arg, 0755));
    }
    if (strcmp(cmd, "chown") == 0 && arg != NULL) {
        return report(cmd, chown(arg, 1, 1));
    }
    fprintf(stderr, "secprobe: unknown command %s\n", cmd);
    return 2;
}
