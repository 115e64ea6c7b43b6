/* A run writer in C, written from docs/PROTOCOL.md alone: a stand-in for the loops people write in
 * other languages. It "trains" a fake model (loss falls, the LR follows a cosine schedule), writes the
 * run folder (records, status) and serves the control socket: pause, resume, checkpoint, eval, ramp,
 * stop; anything else is refused with a reason. Built and run by tests/integration/test_c_writer.py
 * and tests/ui/test_c_writer_keys.py:
 *
 *     cc -O1 -o nexus_writer nexus_writer.c -lm && ./nexus_writer RUN_DIR [STEPS] [STEP_MS]
 *
 * No libraries: msgpack is written and read by hand (the subset the protocol uses).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* -- msgpack out ---------------------------------------------------------------------------- */

typedef struct { unsigned char b[65536]; size_t n; } Buf;

static void put(Buf *o, const void *p, size_t n) {
    if (o->n + n <= sizeof o->b) { memcpy(o->b + o->n, p, n); o->n += n; }
}
static void byte(Buf *o, unsigned c) { unsigned char x = (unsigned char)c; put(o, &x, 1); }
static void be(Buf *o, uint64_t v, int bytes) { for (int i = bytes - 1; i >= 0; i--) byte(o, (unsigned)(v >> (8 * i)) & 0xff); }
static void map(Buf *o, unsigned n) { if (n < 16) byte(o, 0x80 | n); else { byte(o, 0xde); be(o, n, 2); } }
static void arr(Buf *o, unsigned n) { if (n < 16) byte(o, 0x90 | n); else { byte(o, 0xdc); be(o, n, 2); } }
static void str(Buf *o, const char *s) {
    size_t n = strlen(s);
    if (n < 32) byte(o, 0xa0 | (unsigned)n); else if (n < 256) { byte(o, 0xd9); byte(o, (unsigned)n); } else { byte(o, 0xda); be(o, n, 2); }
    put(o, s, n);
}
static void i64(Buf *o, int64_t v) { if (v >= 0 && v < 128) byte(o, (unsigned)v); else { byte(o, 0xd3); be(o, (uint64_t)v, 8); } }
static void f64(Buf *o, double v) { uint64_t u; memcpy(&u, &v, 8); byte(o, 0xcb); be(o, u, 8); }
static void boolean(Buf *o, int v) { byte(o, v ? 0xc3 : 0xc2); }
static void nil(Buf *o) { byte(o, 0xc0); }

/* -- msgpack in: one map of str keys to scalars --------------------------------------------- */

typedef struct { char key[32]; int kind; double num; int64_t integer; char text[256]; } Field; /* kind: 'i' 'f' 's' 'b' 'n' '?' */
typedef struct { Field f[16]; int n; } Request;

static int64_t rd(const unsigned char *p, int bytes) { int64_t v = 0; for (int i = 0; i < bytes; i++) v = (v << 8) | p[i]; return v; }

/* Parses one value at p (len bytes left) into f; returns bytes used, 0 when incomplete, -1 when not understood. */
static int value(const unsigned char *p, size_t len, Field *f) {
    if (len < 1) return 0;
    unsigned c = p[0];
    size_t need = 1;
    if (c <= 0x7f) { f->kind = 'i'; f->integer = c; return 1; }
    if (c >= 0xe0) { f->kind = 'i'; f->integer = (int8_t)c; return 1; }
    if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda) {
        size_t hdr = (c & 0xe0) == 0xa0 ? 1 : c == 0xd9 ? 2 : 3;
        if (len < hdr) return 0;
        size_t n = (c & 0xe0) == 0xa0 ? (c & 0x1f) : c == 0xd9 ? p[1] : (size_t)rd(p + 1, 2);
        if (len < hdr + n) return 0;
        f->kind = 's';
        size_t k = n < sizeof f->text - 1 ? n : sizeof f->text - 1;
        memcpy(f->text, p + hdr, k); f->text[k] = 0;
        return (int)(hdr + n);
    }
    switch (c) {
    case 0xc0: f->kind = 'n'; return 1;
    case 0xc2: case 0xc3: f->kind = 'b'; f->integer = c == 0xc3; return 1;
    case 0xca: need = 5; if (len < need) return 0; { uint32_t u = (uint32_t)rd(p + 1, 4); float x; memcpy(&x, &u, 4); f->kind = 'f'; f->num = x; } return 5;
    case 0xcb: need = 9; if (len < need) return 0; { uint64_t u = (uint64_t)rd(p + 1, 8); memcpy(&f->num, &u, 8); f->kind = 'f'; } return 9;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int b = 1 << (c - 0xcc); if (len < (size_t)b + 1) return 0; f->kind = 'i'; f->integer = rd(p + 1, b); return b + 1; }
    case 0xd0: if (len < 2) return 0; f->kind = 'i'; f->integer = (int8_t)p[1]; return 2;
    case 0xd1: if (len < 3) return 0; f->kind = 'i'; f->integer = (int16_t)rd(p + 1, 2); return 3;
    case 0xd2: if (len < 5) return 0; f->kind = 'i'; f->integer = (int32_t)rd(p + 1, 4); return 5;
    case 0xd3: if (len < 9) return 0; f->kind = 'i'; f->integer = rd(p + 1, 8); return 9;
    }
    return -1;
}

/* 1: a whole request parsed; 0: need more bytes; -1: not a map of str keys to scalars. */
static int parse(const unsigned char *p, size_t len, Request *r) {
    if (len < 1) return 0;
    unsigned c = p[0];
    size_t n, at;
    if ((c & 0xf0) == 0x80) { n = c & 0x0f; at = 1; }
    else if (c == 0xde) { if (len < 3) return 0; n = (size_t)rd(p + 1, 2); at = 3; }
    else return -1;
    r->n = 0;
    for (size_t i = 0; i < n; i++) {
        Field key, val;
        int used = value(p + at, len - at, &key);
        if (used <= 0) return used;
        if (key.kind != 's') return -1;
        at += (size_t)used;
        used = value(p + at, len - at, &val);
        if (used <= 0) return used;
        at += (size_t)used;
        if (r->n < 16) { val.key[0] = 0; strncat(val.key, key.text, sizeof val.key - 1); r->f[r->n++] = val; }
    }
    return 1;
}

static Field *get(Request *r, const char *key) {
    for (int i = 0; i < r->n; i++) if (!strcmp(r->f[i].key, key)) return &r->f[i];
    return NULL;
}

/* -- the run -------------------------------------------------------------------------------- */

static char dir[4096];
static int records_fd = -1;
static int64_t seq = 0, step = 0, total = 0;
static double lr_peak = 0.01, lr_now = 0.01, ramp_from = 0, ramp_to = 0, scale = 1.0;
static int64_t ramp_start = -1, ramp_len = 0;
static const char *state = "starting";
static int paused = 0, stopping = 0;

static double now(void) { struct timeval tv; gettimeofday(&tv, NULL); return tv.tv_sec + tv.tv_usec / 1e6; }
static double cosine(int64_t s) { return lr_peak * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * (double)s / (double)total))); }

static double lr_at(int64_t s) {  /* the LR step s uses: the schedule, or the ramp, then the schedule scaled */
    if (ramp_start >= 0 && s <= ramp_start + ramp_len) {
        if (ramp_len == 0) return ramp_to;
        return ramp_from + (ramp_to - ramp_from) * (double)(s - ramp_start) / (double)ramp_len;
    }
    return cosine(s) * scale;
}

static void record_begin(Buf *o, const char *type, unsigned fields) {
    o->n = 0;
    map(o, fields + 3);
    str(o, "type"); str(o, type);
    str(o, "seq"); i64(o, seq);
    str(o, "time"); f64(o, now());
}

static void record_end(Buf *o) {
    if (write(records_fd, o->b, o->n) != (ssize_t)o->n) { perror("records"); exit(3); }
    seq++;
}

static void write_status(void) {
    char tmp[4200], path[4200], body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"pid\": %d, \"state\": \"%s\", \"step\": %lld, \"total_steps\": %lld, \"updated\": %.3f, "
                     "\"run\": \"cwriter\", \"exit_code\": %s}\n",
                     (int)getpid(), state, (long long)step, (long long)total, now(),
                     (strcmp(state, "stopped") && strcmp(state, "finished")) ? "null" : "0");
    snprintf(tmp, sizeof tmp, "%s/.status.tmp", dir);
    snprintf(path, sizeof path, "%s/status", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, body, (size_t)n) != n) { perror("status"); exit(3); }
    close(fd);
    rename(tmp, path);
}

static void set_state(const char *s, const char *reason) {
    Buf o;
    int final = !strcmp(s, "stopped");
    state = s;
    record_begin(&o, "state", final ? 4 : 3);
    str(&o, "state"); str(&o, s);
    str(&o, "step"); i64(&o, step);
    str(&o, "reason"); str(&o, reason);
    if (final) { str(&o, "exit_code"); i64(&o, 0); }
    record_end(&o);
    write_status();
}

static void hello(void) {
    static const char *cmds[] = {"pause", "resume", "checkpoint", "eval", "ramp", "stop"};
    Buf o;
    record_begin(&o, "hello", 8);
    str(&o, "protocol"); i64(&o, 1);
    str(&o, "pid"); i64(&o, getpid());
    str(&o, "run"); str(&o, "cwriter");
    str(&o, "total_steps"); i64(&o, total);
    str(&o, "model"); str(&o, "c-writer");
    str(&o, "config"); map(&o, 2); str(&o, "lr"); f64(&o, lr_peak); str(&o, "language"); str(&o, "C");
    str(&o, "commands"); arr(&o, 6); for (int i = 0; i < 6; i++) str(&o, cmds[i]);
    str(&o, "lr_schedule"); map(&o, 3);
    str(&o, "source"); str(&o, "cosine (C)");
    int points = 50;
    str(&o, "step"); arr(&o, (unsigned)points + 1); for (int i = 0; i <= points; i++) i64(&o, total * i / points);
    str(&o, "lr"); arr(&o, (unsigned)points + 1); for (int i = 0; i <= points; i++) f64(&o, cosine(total * i / points));
    record_end(&o);
}

/* -- the control socket --------------------------------------------------------------------- */

static void reply(int conn, int ok, const char *error, const char *text) {
    Buf o = {.n = 0};
    map(&o, text ? 4 : 3);
    str(&o, "ok"); boolean(&o, ok);
    str(&o, "error"); str(&o, error);
    str(&o, "step"); i64(&o, step);
    if (text) { str(&o, "text"); str(&o, text); }
    if (write(conn, o.b, o.n) < 0) { /* the client went away */ }
}

static void command(int conn, Request *r) {
    Field *cmd = get(r, "cmd");
    char text[512];
    if (!cmd || cmd->kind != 's') { reply(conn, 0, "a command must be a map with a 'cmd' string", NULL); return; }
    const char *c = cmd->text;
    if (!strcmp(c, "pause")) {
        if (!paused) { paused = 1; set_state("paused", "pause command"); }
        reply(conn, 1, "", NULL);
    } else if (!strcmp(c, "resume")) {
        if (paused) { paused = 0; set_state("running", "resume command"); }
        reply(conn, 1, "", NULL);
    } else if (!strcmp(c, "stop")) {
        stopping = 1;
        reply(conn, 1, "", "stopping at the end of this step");
    } else if (!strcmp(c, "checkpoint")) {
        char path[4200], rel[64];
        Buf o;
        snprintf(rel, sizeof rel, "ckpt-%lld.bin", (long long)step);
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        FILE *f = fopen(path, "wb");
        if (!f) { reply(conn, 0, "checkpoint failed: cannot write the file", NULL); return; }
        fprintf(f, "step %lld lr %g\n", (long long)step, lr_now);
        fclose(f);
        record_begin(&o, "ckpt", 4);
        str(&o, "step"); i64(&o, step); str(&o, "path"); str(&o, rel);
        str(&o, "best"); boolean(&o, 0); str(&o, "val_loss"); nil(&o);
        record_end(&o);
        reply(conn, 1, "", rel);
    } else if (!strcmp(c, "eval")) {
        Buf o;
        record_begin(&o, "eval", 2);
        str(&o, "step"); i64(&o, step); str(&o, "val_loss"); f64(&o, 2.0 + 3.0 / (1.0 + (double)step / 50.0));
        record_end(&o);
        reply(conn, 1, "", NULL);
    } else if (!strcmp(c, "ramp")) {
        Field *t = get(r, "target_lr"), *n = get(r, "ramp_steps"), *tot = get(r, "total_steps");
        double target = t ? (t->kind == 'f' ? t->num : t->kind == 'i' ? (double)t->integer : -1) : -1;
        if (!(target > 0) || !isfinite(target)) { reply(conn, 0, "ramp target_lr must be a number > 0", NULL); return; }
        if (!n || n->kind != 'i' || n->integer < 0) { reply(conn, 0, "ramp ramp_steps must be an int >= 0", NULL); return; }
        if (tot && tot->kind == 'i' && tot->integer > step) total = tot->integer;
        ramp_from = lr_now; ramp_to = target; ramp_start = step; ramp_len = n->integer;
        scale = target / cosine(step + ramp_len);
        snprintf(text, sizeof text, "LR ramp from %.4g to %.4g over %lld steps", ramp_from, target, (long long)ramp_len);
        reply(conn, 1, "", text);
    } else {
        snprintf(text, sizeof text, "this run does not take %.40s (it takes pause, resume, checkpoint, eval, ramp, stop)", c);
        reply(conn, 0, text, NULL);
    }
}

static void serve(int server, int wait_ms) {
    struct pollfd p = {.fd = server, .events = POLLIN};
    while (poll(&p, 1, wait_ms) > 0) {
        wait_ms = 0;
        int conn = accept(server, NULL, NULL);
        if (conn < 0) return;
        struct ucred cred; socklen_t len = sizeof cred;
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid != getuid()) { close(conn); continue; }
        unsigned char buf[8192]; size_t have = 0; Request r; int got = 0;
        struct timeval tv = {.tv_sec = 2}; setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (have < sizeof buf) {
            ssize_t k = read(conn, buf + have, sizeof buf - have);
            if (k <= 0) break;
            have += (size_t)k;
            if ((got = parse(buf, have, &r)) != 0) break;
        }
        if (got == 1) command(conn, &r);
        else reply(conn, 0, "a command is one msgpack map with string keys", NULL);
        close(conn);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s RUN_DIR [STEPS] [STEP_MS]\n", argv[0]); return 2; }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    total = argc > 2 ? atoll(argv[2]) : 100000;
    int step_ms = argc > 3 ? atoi(argv[3]) : 20;
    mkdir(dir, 0755);
    write_status();
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.msgpack", dir);
    records_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (records_fd < 0) { perror("metrics.msgpack"); return 3; }
    hello();

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char sock_path[4200], real[4096];
    if (!realpath(dir, real)) { perror("realpath"); return 3; }
    snprintf(sock_path, sizeof sock_path, "%s/control.sock", real);
    if (strlen(sock_path) > 100) { fprintf(stderr, "run folder path too long for this writer's socket\n"); return 3; }
    strcpy(addr.sun_path, sock_path);
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(sock_path);
    mode_t old = umask(0177);
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 16) < 0) { perror("socket"); return 3; }
    umask(old);

    set_state("running", "");
    double last_status = now();
    while (step < total && !stopping) {
        serve(server, paused ? 100 : step_ms);
        if (paused) { if (now() - last_status > 0.5) { write_status(); last_status = now(); } continue; }
        if (stopping) break;
        step++;
        lr_now = lr_at(step);
        Buf o;
        record_begin(&o, "metric", 4);
        str(&o, "step"); i64(&o, step);
        str(&o, "loss"); f64(&o, 2.0 + 3.0 / (1.0 + (double)step / 50.0));
        str(&o, "lr"); f64(&o, lr_now);
        str(&o, "tokens"); i64(&o, step * 256);
        record_end(&o);
        if (now() - last_status > 0.5) { write_status(); last_status = now(); }
    }
    close(server);
    unlink(sock_path);
    if (stopping) set_state("stopped", "stop command");
    else {
        Buf o;
        state = "finished";
        record_begin(&o, "state", 4);
        str(&o, "state"); str(&o, "finished"); str(&o, "step"); i64(&o, step);
        str(&o, "reason"); str(&o, "reached its end"); str(&o, "exit_code"); i64(&o, 0);
        record_end(&o);
        write_status();
    }
    return 0;
}
