# Every configuration in conf-examples/ passes `nginx -t` with the module.

use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Path qw(make_path);

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my @modules = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
my @confs = glob 'conf-examples/*.conf';

ok(@confs > 0, 'there are examples');

for my $conf (@confs) {
    my $dir = tempdir(CLEANUP => 1);
    make_path("$dir/conf", "$dir/logs", "$dir/temp");
    system('cp', '-r', 'conf-examples/prompts', 'conf-examples/replies',
           "$dir/conf/") == 0 or die "cannot copy the example files";

    open my $in, '<', $conf or die "$conf: $!";
    open my $out, '>', "$dir/conf/nginx.conf" or die $!;
    print {$out} "load_module $_;\n" for @modules;
    print {$out} do { local $/; <$in> };
    close $out;

    my $output = `$nginx -t -p $dir/ -c $dir/conf/nginx.conf 2>&1`;
    is($?, 0, "nginx -t $conf") or diag($output);
}

done_testing();
