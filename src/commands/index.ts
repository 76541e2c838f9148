// The command map, given to oclif explicitly so that a bundle needs no directory scan.
import Allocator from './allocator.js'
import Proxy from './proxy.js'
import Members from './members.js'
import ConfigShow from './config/show.js'
import ConfigValidate from './config/validate.js'
import ConfigInit from './config/init.js'
import HelloWorldServer from './hello-world-server.js'
import Register from './register.js'
import Deregister from './deregister.js'
import Reload from './reload.js'
import Apps from './apps.js'
import Scale from './scale.js'

export const COMMANDS = {
  allocator: Allocator,
  proxy: Proxy,
  members: Members,
  'config:show': ConfigShow,
  'config:validate': ConfigValidate,
  'config:init': ConfigInit,
  'hello-world-server': HelloWorldServer,
  register: Register,
  deregister: Deregister,
  reload: Reload,
  apps: Apps,
  scale: Scale
}
