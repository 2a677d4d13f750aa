package Test::Classify::Log;

# The nginx error log as a response body, read the same under either
# runner.  A block whose checks are about the error log as a whole ("logged
# once, not once per request") cannot use --- error_log or --- no_error_log
# across blocks: the project's runner reads only the lines logged since its
# previous read, OpenResty's Test::Nginx reads a block that reuses the
# running nginx from the top of its log.  The log of the running nginx is
# the same file under both, so such a check reads it through nginx:
#
#     --- config
#     ...
#     location = /errlog { default_type text/plain; alias logs/error.log; }
#     --- request eval
#     ["POST /chat\n...", "POST /chat\n...", "GET /errlog"]
#     --- response_body_filters eval
#     [[], [], [Test::Classify::Log::lines(qr/\[error\]/)]]
#     --- response_body_like eval
#     [qr/^passed\n$/, qr/^passed\n$/,
#      qr/\A\[error\] classify_redis "[^"]+": cannot connect[^\n]*\n\z/]
#
# lines($re) is a response body filter: of the whole log it keeps the lines
# that match $re, each as "[level] message\n", without the time, the pids,
# the connection number and the ", client: ..." part, so that the
# expectation can be exact: one line there is one line in the log, two
# lines are two.  The log is read after the last request (each runner reads
# it after every response too, which leaves the earlier requests' log lines
# time to be written).

use strict;
use warnings;

sub lines {
    my ($re) = @_;

    return sub {
        my ($log) = @_;
        my $out = '';

        for my $line (split /\n/, $log // '') {
            next unless $line =~ $re;
            $line =~ s/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: (?:\*\d+ )?/$1 /;
            $line =~ s/, client: .*//;
            $out .= "$line\n";
        }

        return $out;
    };
}

1;
