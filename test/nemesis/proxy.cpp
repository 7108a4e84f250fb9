#include "proxy.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <future>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace raftkv::nemesis {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using error_code = boost::system::error_code;

std::string to_string(const link_rule& r)
{
    switch (r.what) {
    case link_rule::kind::pass: return "pass";
    case link_rule::kind::drop: return "drop";
    case link_rule::kind::stall: return "stall";
    case link_rule::kind::delay: return "delay " + std::to_string(r.delay.count()) + "ms";
    }
    return "?";
}

namespace {

/// The greeting's size and where it names the sender (include/raftkv/asio/detail/greeting.hpp).
constexpr std::size_t greeting_size = 48;
constexpr std::size_t greeting_sender_offset = 16;

/// How often a held chunk looks at its link's rule again.
constexpr std::chrono::milliseconds stall_poll{10};

/// How long a connection the proxy refuses (a dropped link, a destination that is down) is
/// held open before it is closed. The dialer saw its connection accepted, which resets its
/// reconnection backoff; closing at once would make it dial again every 50 ms.
constexpr std::chrono::milliseconds refusal_hold{500};

} // namespace

struct proxy::impl {
    struct session;

    net::io_context io;
    net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(io);
    std::list<tcp::acceptor> acceptors;       // io thread only
    std::vector<std::weak_ptr<session>> live; // io thread only
    mutable std::mutex mutex;
    std::map<std::pair<std::uint64_t, std::uint64_t>, link_rule> rules; // guarded by mutex
    std::atomic<std::uint64_t> refused{0}, forwarded{0};
    std::thread thread;

    impl() : thread([this] { io.run(); }) {}

    ~impl()
    {
        run_on_io([this] {
            for (auto& a : acceptors) {
                error_code ignored;
                a.close(ignored);
            }
            for (auto& w : live)
                if (auto s = w.lock())
                    s->close();
        });
        work.reset();
        io.stop();
        thread.join();
    }

    /// Runs `f` on the proxy's thread and waits for it.
    template <class F>
    auto run_on_io(F f) -> decltype(f())
    {
        std::packaged_task<decltype(f())()> task(std::move(f));
        auto done = task.get_future();
        net::post(io, [&task] { task(); });
        return done.get();
    }

    link_rule rule(std::uint64_t from, std::uint64_t to) const
    {
        std::lock_guard lock(mutex);
        const auto it = rules.find({from, to});
        return it == rules.end() ? link_rule{} : it->second;
    }

    void accept(tcp::acceptor& acceptor, std::uint64_t to, std::uint16_t target)
    {
        acceptor.async_accept([this, &acceptor, to, target](error_code ec, tcp::socket socket) {
            if (ec == net::error::operation_aborted || !acceptor.is_open())
                return;
            if (!ec) {
                auto s = std::make_shared<session>(*this, std::move(socket), to, target);
                std::erase_if(live, [](const std::weak_ptr<session>& w) { return w.expired(); });
                live.push_back(s);
                s->start();
            }
            accept(acceptor, to, target);
        });
    }

    /// Closes the connections of links that now drop.
    void enforce()
    {
        for (auto& w : live)
            if (auto s = w.lock(); s && s->from != 0 && rule(s->from, s->to).what == link_rule::kind::drop)
                s->close();
    }

    /// One proxied connection: the dialer's side (`client`) and the destination's (`server`).
    struct session : std::enable_shared_from_this<session> {
        impl& owner;
        tcp::socket client, server;
        std::uint64_t from = 0; // 0 until the greeting named the sender
        const std::uint64_t to;
        const std::uint16_t target;
        std::vector<char> up = std::vector<char>(64 * 1024); // client -> server
        std::size_t up_size = 0;
        clock_type::time_point up_arrived;
        std::array<char, 4096> down{}; // server -> client (a raftkv listener never writes)
        net::steady_timer timer;
        bool closed = false;

        session(impl& o, tcp::socket s, std::uint64_t t, std::uint16_t port)
            : owner(o), client(std::move(s)), server(o.io), to(t), target(port), timer(o.io)
        {
        }

        /// Closes the connection after refusal_hold, forwarding nothing meanwhile.
        void refuse()
        {
            timer.expires_after(refusal_hold);
            timer.async_wait([self = shared_from_this()](error_code) { self->close(); });
        }

        void close()
        {
            if (closed)
                return;
            closed = true;
            error_code ignored;
            client.close(ignored);
            server.close(ignored);
            timer.cancel();
        }

        void start()
        {
            net::async_read(
                client, net::buffer(up.data(), greeting_size),
                [self = shared_from_this()](error_code ec, std::size_t) { self->on_greeting(ec); });
        }

        void on_greeting(error_code ec)
        {
            if (ec || closed)
                return close();
            std::uint64_t sender = 0;
            for (std::size_t i = 0; i < 8; ++i)
                sender = (sender << 8) | static_cast<unsigned char>(up[greeting_sender_offset + i]);
            from = sender;
            if (owner.rule(from, to).what == link_rule::kind::drop) {
                ++owner.refused;
                return refuse();
            }
            server.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), target),
                                 [self = shared_from_this()](error_code ec2) { self->on_connected(ec2); });
        }

        void on_connected(error_code ec)
        {
            if (closed)
                return;
            if (ec)
                return refuse();
            ++owner.forwarded;
            error_code ignored;
            client.set_option(tcp::no_delay(true), ignored);
            server.set_option(tcp::no_delay(true), ignored);
            pump_down();
            up_size = greeting_size; // the greeting is the first chunk to deliver
            up_arrived = clock_type::now();
            deliver();
        }

        void pump_up()
        {
            client.async_read_some(net::buffer(up),
                                   [self = shared_from_this()](error_code ec, std::size_t n) {
                                       if (ec || self->closed)
                                           return self->close();
                                       self->up_size = n;
                                       self->up_arrived = clock_type::now();
                                       self->deliver();
                                   });
        }

        /// Forwards the chunk in `up` as the link's rule says, then reads the next one.
        void deliver()
        {
            if (closed)
                return;
            const link_rule r = owner.rule(from, to);
            clock_type::time_point wake{};
            switch (r.what) {
            case link_rule::kind::drop: return close();
            case link_rule::kind::stall: wake = clock_type::now() + stall_poll; break;
            case link_rule::kind::delay:
                if (clock_type::now() < up_arrived + r.delay)
                    wake = std::min(up_arrived + r.delay, clock_type::now() + stall_poll);
                break;
            case link_rule::kind::pass: break;
            }
            if (wake != clock_type::time_point{}) {
                timer.expires_at(wake);
                timer.async_wait([self = shared_from_this()](error_code) { self->deliver(); });
                return;
            }
            net::async_write(server, net::buffer(up.data(), up_size),
                             [self = shared_from_this()](error_code ec, std::size_t) {
                                 if (ec || self->closed)
                                     return self->close();
                                 self->pump_up();
                             });
        }

        void pump_down()
        {
            server.async_read_some(net::buffer(down),
                                   [self = shared_from_this()](error_code ec, std::size_t n) {
                                       if (ec || self->closed)
                                           return self->close();
                                       net::async_write(self->client, net::buffer(self->down.data(), n),
                                                        [self](error_code ec2, std::size_t) {
                                                            if (ec2 || self->closed)
                                                                return self->close();
                                                            self->pump_down();
                                                        });
                                   });
        }
    };
};

proxy::proxy() : impl_(std::make_unique<impl>()) {}

proxy::~proxy() = default;

std::uint16_t proxy::add_destination(std::uint64_t to, std::uint16_t target_port)
{
    return impl_->run_on_io([this, to, target_port] {
        auto& a = impl_->acceptors.emplace_back(impl_->io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        impl_->accept(a, to, target_port);
        return a.local_endpoint().port();
    });
}

void proxy::set(std::uint64_t from, std::uint64_t to, link_rule rule)
{
    {
        std::lock_guard lock(impl_->mutex);
        if (rule.what == link_rule::kind::pass)
            impl_->rules.erase({from, to});
        else
            impl_->rules[{from, to}] = rule;
    }
    if (rule.what == link_rule::kind::drop)
        impl_->run_on_io([this] { impl_->enforce(); });
}

link_rule proxy::rule(std::uint64_t from, std::uint64_t to) const
{
    return impl_->rule(from, to);
}

void proxy::heal()
{
    std::lock_guard lock(impl_->mutex);
    impl_->rules.clear();
}

std::uint64_t proxy::refused() const
{
    return impl_->refused;
}

std::uint64_t proxy::forwarded() const
{
    return impl_->forwarded;
}

} // namespace raftkv::nemesis
