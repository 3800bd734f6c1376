// Whole-file reads and atomic file replacement (include/mlm/file_io.hpp).
#include <mlm/file_io.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mlm {

// ---- atomic replacement of a file ------------------------------------------------------------

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_directory(const std::string& path) {
    std::string parent = std::filesystem::path(path).parent_path().string();
    return parent.empty() ? "." : parent;
}

// fsync a directory so a rename inside it is durable. Filesystems that cannot fsync a directory
// (EINVAL) are accepted.
void fsync_directory(const std::string& dir, const std::string& target) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        throw CheckpointError("wrote " + target + " but cannot open its directory " + dir +
                              " to sync it: " + errno_text(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL)
        throw CheckpointError("wrote " + target + " but syncing its directory " + dir +
                              " failed: " + errno_text(err));
}

}  // namespace

namespace detail {

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    fd_ = ::open(tmp_.c_str(), flags, 0666);
    if (fd_ < 0 && errno == EEXIST) {  // left by a crashed process with our pid
        ::unlink(tmp_.c_str());
        fd_ = ::open(tmp_.c_str(), flags, 0666);
    }
    if (fd_ < 0) fail("cannot create the temporary file " + tmp_, errno);
    created_ = true;
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (created_ && !committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const std::size_t chunk = std::min<std::size_t>(n, std::size_t{1} << 30);
        const ssize_t w = ::write(fd_, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("writing " + tmp_ + " failed", errno);
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void AtomicFile::commit() {
    if (::fsync(fd_) != 0) fail("syncing " + tmp_ + " failed", errno);
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) fail("closing " + tmp_ + " failed", errno);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
        fail("cannot rename " + tmp_ + " over it", errno);
    committed_ = true;
    fsync_directory(parent_directory(path_), path_);
}

void AtomicFile::fail(const std::string& what, int err) const {
    throw CheckpointError("cannot write " + path_ + ": " + what + ": " + errno_text(err) +
                          " (any existing file there is unchanged)");
}

}  // namespace detail

void write_file_atomic(const std::string& path, const std::string& bytes) {
    detail::AtomicFile file(path);
    file.write(bytes.data(), bytes.size());
    file.commit();
}

std::string read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw CheckpointError("cannot read " + path + ": " + errno_text(errno));
    std::string out;
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            ::close(fd);
            throw CheckpointError("cannot read " + path + ": it is a directory");
        }
        out.reserve(static_cast<std::size_t>(st.st_size));
    }
    char buf[1 << 16];
    for (;;) {
        const ssize_t r = ::read(fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            throw CheckpointError("cannot read " + path + ": " + errno_text(err));
        }
        if (r == 0) break;
        out.append(buf, static_cast<std::size_t>(r));
    }
    ::close(fd);
    return out;
}

}  // namespace mlm
