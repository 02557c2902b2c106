// Stand-in for OpenSearch's opensearch-plugin-classloader jar, which the distribution ships in lib/ but
// Maven Central does not carry. The server calls create(parent, loaders) for every plugin: a class loader
// that looks up classes in the plugins the plugin extends (after its parent). Compiled by opensearch.sh.
package org.opensearch.plugins;

import java.security.AccessController;
import java.security.PrivilegedAction;
import java.util.List;

public class ExtendedPluginsClassLoader extends ClassLoader {
    private final List<ClassLoader> extendedLoaders;

    private ExtendedPluginsClassLoader(ClassLoader parent, List<ClassLoader> extendedLoaders) {
        super(parent);
        this.extendedLoaders = List.copyOf(extendedLoaders);
    }

    @Override
    protected Class<?> findClass(String name) throws ClassNotFoundException {
        for (ClassLoader loader : extendedLoaders) {
            try {
                return loader.loadClass(name);
            } catch (ClassNotFoundException ignored) {
                // try the next extended plugin
            }
        }
        throw new ClassNotFoundException(name);
    }

    @SuppressWarnings("removal")
    public static ExtendedPluginsClassLoader create(ClassLoader parent, List<ClassLoader> extendedLoaders) {
        return AccessController.doPrivileged(
            (PrivilegedAction<ExtendedPluginsClassLoader>) () -> new ExtendedPluginsClassLoader(parent, extendedLoaders));
    }
}
