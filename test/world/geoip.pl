#!/usr/bin/perl
# The world's GeoIP database: its own private networks mapped to places, in the GeoIP2-City schema, written with
# MaxMind's own writer (Debian: libmaxmind-db-writer-perl). Reads "cidr<TAB>city<TAB>country<TAB>continent<TAB>lat<TAB>lon"
# lines on stdin, writes the mmdb to the path given.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift or die "usage: geoip.pl OUT.mmdb < networks.tsv\n";
my %types = (
    city => 'map', continent => 'map', country => 'map', location => 'map', names => 'map',
    code => 'utf8_string', iso_code => 'utf8_string', en => 'utf8_string',
    latitude => 'double', longitude => 'double',
);
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version => 6,
    record_size => 28,
    database_type => 'GeoIP2-City',
    languages => ['en'],
    description => { en => 'parrot-cdn world: private test networks' },
    remove_reserved_networks => 0,   # the world's addresses are private by design
    map_key_type_callback => sub { $types{ $_[0] } or die "no type for key $_[0]\n" },
);
while (my $line = <STDIN>) {
    chomp $line;
    next unless $line;
    my ($cidr, $city, $country, $continent, $lat, $lon) = split /\t/, $line;
    $tree->insert_network($cidr, {
        city => { names => { en => $city } },
        country => { iso_code => $country },
        continent => { code => $continent },
        location => { latitude => $lat + 0.0, longitude => $lon + 0.0 },
    });
}
open my $fh, '>:raw', $out or die "cannot write $out: $!\n";
$tree->write_tree($fh);
close $fh;
