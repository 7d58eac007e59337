/* api-request: one HTTP/1.1 request to ppc-vmm's API socket (AF_UNIX), for nested runs whose
 * L1 has no curl: `api-request SOCKET METHOD PATH [JSON-BODY]`. Prints the response (status
 * line, headers, body) and exits 0 on a 2xx status, 1 on any other, 2 on a usage or socket
 * error. One request per connection, as the server answers with Connection: close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s SOCKET METHOD PATH [BODY]\n", argv[0]);
        return 2;
    }
    const char *body = argc == 5 ? argv[4] : "";
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "api-request: socket path too long\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("api-request: connect");
        return 2;
    }
    char req[8192];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     argv[2], argv[3], strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        fprintf(stderr, "api-request: request too long\n");
        return 2;
    }
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, req + off, (size_t)(n - off));
        if (w <= 0) {
            perror("api-request: write");
            return 2;
        }
        off += (int)w;
    }
    char resp[65536];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof(resp) - 1)
            break;
    }
    resp[got] = 0;
    fwrite(resp, 1, got, stdout);
    if (got && resp[got - 1] != '\n')
        putchar('\n');
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return 1;
    return status >= 200 && status < 300 ? 0 : 1;
}
