// Stands in for Elasticsearch's ansi-console library (not on Maven Central): the server loads this class
// at start to find a terminal; a test node has none, so it supplies none.
package org.elasticsearch.io.ansi;

import java.util.function.Supplier;

public class AnsiConsoleLoader implements Supplier<Object> {
    public AnsiConsoleLoader() {}

    @Override
    public Object get() {
        return null;
    }
}
